"""Multiply-accumulate counts: the one definition every stage uses.

A MAC is one int8 weight times one activation, accumulated.  Only
convolutions and dense layers count; pooling, means, adds, activations and
softmax are not charged (the paper's convention, and what the quantiser, the
code generator, the architecture tables and the baselines report).
"""

from __future__ import annotations


def conv_macs(out_len: int, kernel: int, in_channels: int, out_channels: int) -> int:
    """A 1-D convolution: every output position and channel reads ``kernel``
    taps of every input channel."""
    return int(out_len) * int(kernel) * int(in_channels) * int(out_channels)


def depthwise_macs(out_len: int, kernel: int, out_channels: int) -> int:
    """A depthwise 1-D convolution: each output channel reads one input channel."""
    return int(out_len) * int(kernel) * int(out_channels)


def dense_macs(in_features: int, out_features: int, rows: int = 1) -> int:
    """A fully connected layer applied to ``rows`` input vectors."""
    return int(rows) * int(in_features) * int(out_features)
