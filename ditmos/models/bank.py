"""A bank of M identically-shaped conv nets evaluated as ONE computation.

The K classifiers are trained together: their conv kernels are stacked along
the output-channel axis and run as a single grouped convolution (groups = M),
batch-norm statistics are per channel of the stacked tensor, and the Dense
layers are one batched ``einsum``.  A forward pass of all K classifiers is
therefore the same number of TensorFlow ops as one classifier.  The selector
and the strong model are banks with M = 1.

Activations are laid out ``[B, T, M * C]`` (member-major channels), so member
m's channels are ``m*C:(m+1)*C`` and slicing the stacked weights gives plain
Keras ``Conv1D``/``Dense`` weights for export (``ditmos.models.keras_models``).

Weights are ``tf.Variable``s in ``self.vars`` (a dict name -> variable) so a
checkpoint is simply ``{name: value}``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ditmos.models.arch import Net


def _glorot(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    lim = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, size=shape).astype(np.float32)


class Bank(tf.Module):
    """M networks of architecture ``net`` with ``n_out`` outputs each.

    ``side_channels`` maps block b (1-based) to the number of extra channels
    concatenated to block b's output before block b+1 (selector features).
    """

    def __init__(
        self,
        net: Net,
        in_channels: int,
        n_out: int,
        M: int,
        *,
        seed: int,
        side_channels: dict[int, int] | None = None,
        bn_epsilon: float = 1e-3,
        bn_momentum: float = 0.9,
        name: str = "bank",
    ):
        super().__init__(name=name)
        self.net, self.M, self.n_out = net, M, n_out
        self.side = dict(side_channels or {})
        self.eps, self.momentum = bn_epsilon, bn_momentum
        self.in_channels = in_channels
        rng = np.random.default_rng(seed)
        v: dict[str, tf.Variable] = {}
        c = in_channels
        for i, b in enumerate(net.blocks):
            k = np.stack(
                [_glorot(rng, (b.kernel, c, b.filters), b.kernel * c, b.kernel * b.filters) for _ in range(M)], axis=2
            )  # [k, c, M, f]
            v[f"b{i}/kernel"] = tf.Variable(k.reshape(b.kernel, c, M * b.filters), name=f"b{i}_k")
            n = M * b.filters
            v[f"b{i}/gamma"] = tf.Variable(np.ones(n, np.float32), name=f"b{i}_g")
            v[f"b{i}/beta"] = tf.Variable(np.zeros(n, np.float32), name=f"b{i}_b")
            v[f"b{i}/mean"] = tf.Variable(np.zeros(n, np.float32), trainable=False, name=f"b{i}_m")
            v[f"b{i}/var"] = tf.Variable(np.ones(n, np.float32), trainable=False, name=f"b{i}_v")
            c = b.filters + self.side.get(i + 1, 0)
        self.flat_len = None
        self._vars = v
        self._rng = rng
        self._dense_built = False

    # Dense layers depend on the input length; build them once T is known.
    def build(self, T: int) -> "Bank":
        if self._dense_built:
            return self
        t = T
        for b in self.net.blocks:
            t = (t - b.kernel + 1) // b.pool
        d = t * self.net.blocks[-1].filters
        self.flat_len = d
        rng = self._rng
        for j, u in enumerate(list(self.net.fc) + [self.n_out]):
            self._vars[f"fc{j}/kernel"] = tf.Variable(
                np.stack([_glorot(rng, (d, u), d, u) for _ in range(self.M)]), name=f"fc{j}_k"
            )
            self._vars[f"fc{j}/bias"] = tf.Variable(np.zeros((self.M, u), np.float32), name=f"fc{j}_b")
            d = u
        self._dense_built = True
        self.T = T
        return self

    @property
    def vars(self) -> dict[str, tf.Variable]:
        return self._vars

    @property
    def trainable(self) -> list[tf.Variable]:
        return [v for k, v in sorted(self._vars.items()) if v.trainable]

    def trainable_blocks(self, first: int = 0) -> list[tf.Variable]:
        """Trainable variables of conv blocks ``first``.. (0-based) and of the Dense layers."""

        def keep(name: str) -> bool:
            return not name.startswith("b") or int(name[1:].split("/")[0]) >= first

        return [v for k, v in sorted(self._vars.items()) if v.trainable and keep(k)]

    def trunk_variables(self, n_blocks: int) -> list[tf.Variable]:
        """Trainable variables of the first ``n_blocks`` conv blocks."""
        return [
            v
            for k, v in sorted(self._vars.items())
            if v.trainable and k.startswith("b") and int(k[1:].split("/")[0]) < n_blocks
        ]

    @staticmethod
    def replicate(state: dict[str, np.ndarray], M: int) -> dict[str, np.ndarray]:
        """The state of a one-member bank copied into every member of an M-member bank."""
        out = {}
        for k, v in state.items():
            if k.startswith("fc"):
                out[k] = np.repeat(v, M, axis=0)  # [1, ...] -> [M, ...]
            elif k.endswith("/kernel"):
                out[k] = np.tile(v, (1, 1, M))  # member-major output channels
            else:
                out[k] = np.tile(v, M)
        return out

    def get_state(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._vars.items()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        for k, v in self._vars.items():
            v.assign(state[k])

    # ------------------------------------------------------------ forward
    def __call__(self, x, *, training: bool, side=None, return_blocks: bool = False, frozen: int = 0):
        """Forward pass.

        x: ``[B, T, C]`` (same input for all members) or ``[B, T, M, C]``.
        side: dict block -> features ``[B, T_b, C_s]`` (shared) or
        ``[B, T_b, M, C_s]`` (per member), concatenated after block b.
        frozen: the first ``frozen`` blocks run batch norm in inference mode
        even when ``training`` (a frozen trunk keeps its statistics).
        Returns logits ``[B, M, n_out]`` (and the list of block outputs
        ``[B, T_b, M*C_b]`` before any concatenation if ``return_blocks``).
        """
        M = self.M
        x = tf.convert_to_tensor(x, tf.float32)
        if x.shape.rank == 3:
            # every member reads the same input: one ordinary conv with M*F
            # output channels is exactly the M member convs side by side
            h = x
        else:
            s = tf.shape(x)
            h = tf.reshape(x, [s[0], s[1], M * x.shape[-1]])
        blocks = []
        for i, b in enumerate(self.net.blocks):
            h = tf.nn.conv1d(h, self._vars[f"b{i}/kernel"], stride=1, padding="VALID")
            h = self._bn(h, i, training and i >= frozen)
            h = tf.nn.relu(h)
            if b.pool > 1:
                h = tf.nn.max_pool1d(h, ksize=b.pool, strides=b.pool, padding="VALID")
            blocks.append(h)
            if side is not None and (i + 1) in self.side:
                h = self._aggregate(h, side[i + 1], b.filters)
        # flatten per member: [B, T, M*F] -> [B, M, T*F]
        s = tf.shape(h)
        F = self.net.blocks[-1].filters
        h = tf.reshape(h, [s[0], s[1], M, F])
        h = tf.transpose(h, [0, 2, 1, 3])
        h = tf.reshape(h, [s[0], M, self.flat_len])
        n_dense = len(self.net.fc) + 1
        for j in range(n_dense):
            h = tf.einsum("bmd,mdo->bmo", h, self._vars[f"fc{j}/kernel"]) + self._vars[f"fc{j}/bias"]
            if j < n_dense - 1:
                h = tf.nn.relu(h)
        return (h, blocks) if return_blocks else h

    def _aggregate(self, own, sel, F: int):
        """Per member: concat(own_m, sel_m) along channels -> [B, T, M*(F+Cs)]."""
        M = self.M
        s = tf.shape(own)
        own4 = tf.reshape(own, [s[0], s[1], M, F])
        sel = tf.convert_to_tensor(sel, tf.float32)
        if sel.shape.rank == 3:
            sel4 = tf.tile(sel[:, :, None, :], [1, 1, M, 1])
        else:
            sel4 = sel
        cs = sel4.shape[-1]
        h = tf.concat([own4, sel4], axis=-1)
        return tf.reshape(h, [s[0], s[1], M * (F + cs)])

    def _bn(self, h, i: int, training: bool):
        g, b = self._vars[f"b{i}/gamma"], self._vars[f"b{i}/beta"]
        mv, vv = self._vars[f"b{i}/mean"], self._vars[f"b{i}/var"]
        if training:
            mean, var = tf.nn.moments(h, axes=[0, 1])
            mv.assign(self.momentum * mv + (1.0 - self.momentum) * mean)
            vv.assign(self.momentum * vv + (1.0 - self.momentum) * var)
        else:
            mean, var = mv, vv
        return tf.nn.batch_normalization(h, mean, var, b, g, self.eps)

    # ------------------------------------------------------------ export helpers
    def member_weights(self, m: int) -> list[dict[str, np.ndarray]]:
        """Plain per-layer weights of member m (for Keras export), in layer order."""
        out = []
        c = self.in_channels
        for i, b in enumerate(self.net.blocks):
            k = self._vars[f"b{i}/kernel"].numpy()
            sl = slice(m * b.filters, (m + 1) * b.filters)
            out.append(
                {
                    "kind": "conv",
                    "kernel": k[:, :, sl],
                    "gamma": self._vars[f"b{i}/gamma"].numpy()[sl],
                    "beta": self._vars[f"b{i}/beta"].numpy()[sl],
                    "mean": self._vars[f"b{i}/mean"].numpy()[sl],
                    "var": self._vars[f"b{i}/var"].numpy()[sl],
                }
            )
            c = b.filters + self.side.get(i + 1, 0)
        for j in range(len(self.net.fc) + 1):
            out.append(
                {
                    "kind": "dense",
                    "kernel": self._vars[f"fc{j}/kernel"].numpy()[m],
                    "bias": self._vars[f"fc{j}/bias"].numpy()[m],
                }
            )
        del c
        return out
