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
        """One update with learning rate ``lr``; one fused kernel per variable."""
        self.step.assign_add(1)
        if self.kind == "sgd_nesterov":
            # accum = 0.9*accum - lr*g ; var += 0.9*accum - lr*g  (Nesterov momentum 0.9)
            for i, (v, g) in enumerate(zip(self.variables, grads)):
                tf.raw_ops.ResourceApplyKerasMomentum(
                    var=v.handle,
                    accum=self.slots[f"m{i}"].handle,
                    lr=lr,
                    grad=g,
                    momentum=tf.constant(0.9, tf.float32),
                    use_nesterov=True,
                )
        else:
            t = tf.cast(self.step, tf.float32)
            b1p, b2p = tf.pow(0.9, t), tf.pow(0.999, t)
            for i, (v, g) in enumerate(zip(self.variables, grads)):
                tf.raw_ops.ResourceApplyAdam(
                    var=v.handle,
                    m=self.slots[f"m{i}"].handle,
                    v=self.slots[f"v{i}"].handle,
                    beta1_power=b1p,
                    beta2_power=b2p,
                    lr=lr,
                    beta1=tf.constant(0.9, tf.float32),
                    beta2=tf.constant(0.999, tf.float32),
                    epsilon=tf.constant(1e-7, tf.float32),
                    grad=g,
                    use_nesterov=False,
                )

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
