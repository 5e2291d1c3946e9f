"""Tiny optimisers over a list of ``tf.Variable``s with checkpointable slots.

Written out (rather than ``keras.optimizers``) so that every slot is a named
variable whose value goes into the run's checkpoint, which is what makes a
resumed run end in exactly the same weights as an uninterrupted one.  The
learning rate is a tensor argument of ``apply`` so schedules never retrace.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class Optimizer:
    def __init__(self, kind: str, variables: list[tf.Variable], name: str):
        self.kind, self.name = kind, name
        self.variables = list(variables)
        self.slots: dict[str, tf.Variable] = {}
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_step")
        for i, v in enumerate(self.variables):
            if kind == "sgd_nesterov":
                self.slots[f"m{i}"] = tf.Variable(tf.zeros_like(v), trainable=False)
            elif kind == "adam":
                self.slots[f"m{i}"] = tf.Variable(tf.zeros_like(v), trainable=False)
                self.slots[f"v{i}"] = tf.Variable(tf.zeros_like(v), trainable=False)
            else:
                raise ValueError(f"unknown optimizer {kind}")

    def apply(self, grads, lr) -> None:
        self.step.assign_add(1)
        if self.kind == "sgd_nesterov":
            mu = 0.9
            for i, (v, g) in enumerate(zip(self.variables, grads)):
                m = self.slots[f"m{i}"]
                m.assign(mu * m + g)
                v.assign_sub(lr * (g + mu * m))
        else:
            b1, b2, eps = 0.9, 0.999, 1e-7
            t = tf.cast(self.step, tf.float32)
            lr_t = lr * tf.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
            for i, (v, g) in enumerate(zip(self.variables, grads)):
                m, s = self.slots[f"m{i}"], self.slots[f"v{i}"]
                m.assign(b1 * m + (1.0 - b1) * g)
                s.assign(b2 * s + (1.0 - b2) * tf.square(g))
                v.assign_sub(lr_t * m / (tf.sqrt(s) + eps))

    def get_state(self) -> dict[str, np.ndarray]:
        st = {k: v.numpy() for k, v in self.slots.items()}
        st["step"] = self.step.numpy()
        return st

    def set_state(self, st: dict[str, np.ndarray]) -> None:
        for k, v in self.slots.items():
            v.assign(st[k])
        self.step.assign(st["step"])


def lr_at(base: float, epoch: int, halve_every: int) -> float:
    """Step schedule: ``base`` halved every ``halve_every`` epochs (0 = constant)."""
    if halve_every <= 0:
        return float(base)
    return float(base) * 0.5 ** (epoch // halve_every)
