"""The DiTMoS training stages, each a resumable function over a :class:`Trainer`.

Order (``STAGES``): strong model -> generalist (optional: the selector's
trunk and one classifier head trained as a single network on all data, then
copied into the K heads) -> diverse split (KMeans on the strong model's last
conv features, or groups of confusable classes) -> classifier pre-training
on the clusters -> selector pre-training -> adversarial alternation -> model
selection on the validation split.  After every epoch the whole state is checkpointed
atomically (``checkpoints/latest.npz``), and after every stage a copy is kept
(``checkpoints/<stage>.npz``); :meth:`Trainer.resume` continues from the last
finished epoch.  Shuffles are drawn from ``(seed, stage, epoch)`` so a resumed
run repeats the uninterrupted one exactly (with op determinism on).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from ditmos.errors import DitmosError
from ditmos.models.arch import Architecture, block_lengths
from ditmos.models.bank import Bank
from ditmos.training import augment, losses
from ditmos.training.checkpoint import load_checkpoint, prefixed, save_checkpoint, unprefixed
from ditmos.training.optim import Optimizer, lr_at
from ditmos.training.progress import Reporter

STAGES = ("strong", "generalist", "split", "classifier_pretrain", "selector_pretrain", "adversarial", "select")
# random-stream codes of the stages (fixed: adding a stage leaves the others' shuffles alone)
_STAGE_CODE = {
    "strong": 1,
    "split": 2,
    "classifier_pretrain": 3,
    "selector_pretrain": 4,
    "adversarial": 5,
    "select": 6,
    "generalist": 7,
}


class Trainer:
    """Holds the networks, data, optimisers and progress of one run."""

    def __init__(self, cfg: dict, arch: Architecture, data: dict, run_dir: Path, reporter: Reporter):
        self.cfg, self.arch, self.rep = cfg, arch, reporter
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.x_train, self.y_train = data["x_train"], data["y_train"]
        self.x_val, self.y_val = data["x_val"], data["y_val"]
        self.num_classes = int(data["num_classes"])
        _, self.T, self.C = self.x_train.shape
        seed = int(cfg["seed"])
        self.seed = seed
        mom = float(cfg["bn_momentum"])
        eps = arch.bn_epsilon
        self.strong = Bank(
            arch.strong,
            self.C,
            self.num_classes,
            1,
            seed=seed * 1000 + 1,
            bn_epsilon=eps,
            bn_momentum=mom,
            name="strong",
        ).build(self.T)
        self.selector = Bank(
            arch.selector, self.C, arch.K, 1, seed=seed * 1000 + 2, bn_epsilon=eps, bn_momentum=mom, name="selector"
        ).build(self.T)
        side = {b: arch.selector.blocks[b - 1].filters for b in arch.shared_blocks}
        self.classifiers = Bank(
            arch.classifier,
            self.C,
            self.num_classes,
            arch.K,
            seed=seed * 1000 + 3,
            side_channels=side,
            bn_epsilon=eps,
            bn_momentum=mom,
            name="classifiers",
        ).build(self.T)
        # the generalist head (one member) exists only when its stage is on
        self.generalist = None
        if int(cfg["generalist"]["epochs"]) > 0:
            self.generalist = Bank(
                arch.classifier,
                self.C,
                self.num_classes,
                1,
                seed=seed * 1000 + 5,
                side_channels=side,
                bn_epsilon=eps,
                bn_momentum=mom,
                name="generalist",
            ).build(self.T)
        # selector blocks the classifiers read; frozen after the generalist if asked
        self.trunk_blocks = max(arch.shared_blocks, default=0)
        self.frozen_trunk = self.generalist is not None and bool(cfg["generalist"]["freeze_trunk"])
        self.opts: dict[str, Optimizer] = {}
        self.progress = {"stage": STAGES[0], "epoch": 0, "done": [], "history": [], "best": None, "cluster_info": None}
        self.clusters: np.ndarray | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self._arrays: dict[str, np.ndarray] | None = None  # a resumed checkpoint's arrays
        self._build_functions()

    # ---------------------------------------------------------------- graphs
    def _side(self, blocks):
        return {b: blocks[b - 1] for b in self.arch.shared_blocks}

    def _build_functions(self):
        T, C = self.T, self.C
        x_sig = tf.TensorSpec([None, T, C], tf.float32)
        y_sig = tf.TensorSpec([None], tf.int64)
        lr_sig = tf.TensorSpec([], tf.float32)
        w = {k: float(v) for k, v in self.cfg["loss_weights"].items()}
        sel, cls, strong = self.selector, self.classifiers, self.strong

        @tf.function(input_signature=[x_sig])
        def evaluate(x):
            r, sb = sel(x, training=False, return_blocks=True)
            lg = cls(x, training=False, side=self._side(sb))
            return r[:, 0, :], lg

        @tf.function(input_signature=[x_sig])
        def strong_eval(x):
            lg, blocks = strong(x, training=False, return_blocks=True)
            return lg[:, 0, :], blocks[-1]

        @tf.function(input_signature=[x_sig])
        def selector_eval(x):
            r, sb = sel(x, training=False, return_blocks=True)
            return (tf.argmax(r[:, 0, :], axis=-1, output_type=tf.int32), [sb[b - 1] for b in self.arch.shared_blocks])

        gen = self.generalist

        @tf.function(input_signature=[x_sig])
        def generalist_eval(x):
            _, sb = sel(x, training=False, return_blocks=True)
            return gen(x, training=False, side=self._side(sb))[:, 0, :]

        self._generalist_eval = generalist_eval if gen is not None else None
        self._evaluate, self._strong_eval = evaluate, strong_eval
        self._selector_eval = selector_eval
        lens = block_lengths(self.arch.selector, T)
        self._feat_shape = {b: (lens[b - 1], self.arch.selector.blocks[b - 1].filters) for b in self.arch.shared_blocks}
        self._w = w
        self._x_sig, self._y_sig, self._lr_sig = x_sig, y_sig, lr_sig
        self._steps = {}

    def _strong_step(self, opt: Optimizer):
        @tf.function(input_signature=[self._x_sig, self._y_sig, self._lr_sig])
        def step(x, y, lr):
            with tf.GradientTape() as tape:
                lg = self.strong(x, training=True)[:, 0, :]
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=lg))
            opt.apply(tape.gradient(loss, opt.variables), lr)
            return loss

        return step

    def _feat_specs(self, per_member: bool):
        lens = [self._feat_shape[b] for b in self.arch.shared_blocks]
        K = self.arch.K
        return [tf.TensorSpec([None, t, K, f] if per_member else [None, t, f], tf.float32) for t, f in lens]

    def _cls_pretrain_step(self, opt: Optimizer):
        """Pre-training step; selector features are precomputed (the selector is frozen)."""
        K, T, C = self.arch.K, self.T, self.C
        xs = tf.TensorSpec([None, T, K, C], tf.float32)
        ys = tf.TensorSpec([None, K], tf.int64)

        @tf.function(input_signature=[xs, ys, self._feat_specs(True), self._lr_sig])
        def step(x, y, feats, lr):
            # x: [B, T, K, C], member k's own batch from its cluster; feats [B, T_b, K, F]
            side = dict(zip(self.arch.shared_blocks, feats))
            with tf.GradientTape() as tape:
                lg = self.classifiers(x, training=True, side=side)
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=lg)
                loss = tf.reduce_sum(tf.reduce_mean(ce, axis=0))
            opt.apply(tape.gradient(loss, opt.variables), lr)
            return loss / K

        return step

    def selector_variables(self):
        """What routing trains: the whole selector, or all but its frozen trunk."""
        if self.frozen_trunk:
            return self.selector.trainable_blocks(first=self.trunk_blocks)
        return self.selector.trainable

    def _selector_step(self, opt: Optimizer):
        """Routing step; ``y`` are labels (target: the best classifier) or, with
        ``routing.target = cluster``, the sample's cluster (the target itself)."""
        frozen = self.trunk_blocks if self.frozen_trunk else 0
        by_cluster = self.cfg["routing"]["target"] == "cluster"

        @tf.function(input_signature=[self._x_sig, self._y_sig, self._lr_sig])
        def step(x, y, lr):
            with tf.GradientTape() as tape:
                r, sb = self.selector(x, training=True, return_blocks=True, frozen=frozen)
                if by_cluster:
                    target = tf.cast(y, tf.int32)
                else:
                    side = {b: tf.stop_gradient(v) for b, v in self._side(sb).items()}
                    lg = self.classifiers(x, training=False, side=side)
                    target = losses.selector_target(lg, y)
                loss = losses.selector_loss(r[:, 0, :], target)
            opt.apply(tape.gradient(loss, opt.variables), lr)
            return loss

        return step

    def routing_labels(self) -> np.ndarray:
        """Per training sample: what the selector step gets as ``y``."""
        if self.cfg["routing"]["target"] == "cluster":
            return self.clusters
        return self.y_train

    def _generalist_step(self, opt: Optimizer):
        """One step of the single network (selector trunk + one head), CE plus
        optional distillation from the strong model's logits."""
        g = self.cfg["generalist"]
        a, temp = float(g["distill"]), float(g["temperature"])
        smooth = float(g.get("label_smoothing", 0.0))
        t_sig = tf.TensorSpec([None, self.num_classes], tf.float32)

        @tf.function(input_signature=[self._x_sig, self._y_sig, t_sig, self._lr_sig])
        def step(x, y, teacher, lr):
            with tf.GradientTape() as tape:
                _, sb = self.selector(x, training=True, return_blocks=True)
                lg = self.generalist(x, training=True, side=self._side(sb))[:, 0, :]
                if smooth > 0:  # targets (1 - e) one-hot + e / classes
                    target = tf.one_hot(y, self.num_classes) * (1.0 - smooth) + smooth / self.num_classes
                    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=lg))
                else:
                    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=lg))
                if a > 0:
                    kd = tf.reduce_mean(
                        tf.nn.softmax_cross_entropy_with_logits(labels=tf.nn.softmax(teacher / temp), logits=lg / temp)
                    )
                    loss = (1.0 - a) * loss + a * temp * temp * kd
            opt.apply(tape.gradient(loss, opt.variables), lr)
            return loss

        return step

    def _cls_weighted_step(self, opt: Optimizer):
        """Pre-training step where every head sees the same batch of all data;
        ``wts [B, K]`` weights each sample per head (1 in its cluster, less outside)."""
        K = self.arch.K
        w_sig = tf.TensorSpec([None, K], tf.float32)

        @tf.function(input_signature=[self._x_sig, self._y_sig, w_sig, self._feat_specs(False), self._lr_sig])
        def step(x, y, wts, feats, lr):
            with tf.GradientTape() as tape:
                lg = self.classifiers(x, training=True, side=dict(zip(self.arch.shared_blocks, feats)))
                ce = losses.per_sample_ce(lg, y)
                per_k = tf.math.divide_no_nan(tf.reduce_sum(ce * wts, 0), tf.reduce_sum(wts, 0))
                loss = tf.reduce_sum(per_k)
            opt.apply(tape.gradient(loss, opt.variables), lr)
            return loss / K

        return step

    def _adv_classifier_step(self, opt: Optimizer):
        """Adversarial classifier step; the frozen selector's routes/features are inputs."""
        w = self._w
        r_sig = tf.TensorSpec([None], tf.int32)

        @tf.function(input_signature=[self._x_sig, self._y_sig, r_sig, self._feat_specs(False), self._lr_sig])
        def step(x, y, route, feats, lr):
            with tf.GradientTape() as tape:
                lg = self.classifiers(x, training=True, side=dict(zip(self.arch.shared_blocks, feats)))
                loss, _ = losses.adversarial_classifier_loss(lg, y, route, w)
            opt.apply(tape.gradient(loss, opt.variables), lr)
            return loss

        return step

    def selector_outputs(self, x: np.ndarray):
        """Frozen selector on ``x``: routes ``[N]`` and shared-block features (inference mode)."""
        bs = int(self.cfg["eval_batch_size"])
        routes, feats = [], [[] for _ in self.arch.shared_blocks]
        for i in range(0, len(x), bs):
            r, fs = self._selector_eval(tf.constant(x[i : i + bs]))
            routes.append(r.numpy())
            for j, f in enumerate(fs):
                feats[j].append(f.numpy())
        return np.concatenate(routes), [np.concatenate(f) for f in feats]

    # ---------------------------------------------------------------- helpers
    def rng(self, stage: str, epoch: int, extra: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, _STAGE_CODE[stage], epoch, extra])

    def train_inputs(self, stage: str, epoch: int, extra: int = 0) -> np.ndarray:
        """The training windows of one epoch: as they are, augmented (``augment``,
        strong model and generalist only), and/or with Gaussian noise of std
        ``smoothing.sigma`` (not in the generalist); fresh draws per epoch,
        reproducible on resume."""
        from ditmos.training.config import smoothing_sigma

        x = self.x_train
        aug = self.cfg.get("augment")
        if stage in augment.STAGES and augment.active(aug):
            x = augment.augment_windows(x, self.rng(stage, epoch, 1000 + extra), aug)
        sigma = smoothing_sigma(self.cfg)
        if sigma == 0.0 or stage == "generalist":
            return x
        rng = self.rng(stage, epoch, 7)
        noise = rng.standard_normal(self.x_train.shape, dtype=np.float32)
        return (x + np.float32(sigma) * noise).astype(np.float32)

    def batches(self, n: int, batch: int, rng: np.random.Generator):
        perm = rng.permutation(n)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            if len(idx) >= 2:  # batch-norm statistics need at least 2 samples
                yield idx

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Selector logits ``[N, K]`` and classifier logits ``[N, K, classes]``."""
        bs = int(self.cfg["eval_batch_size"])
        rs, ls = [], []
        for i in range(0, len(x), bs):
            r, lg = self._evaluate(tf.constant(x[i : i + bs]))
            rs.append(r.numpy())
            ls.append(lg.numpy())
        return np.concatenate(rs), np.concatenate(ls)

    def strong_predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bs = int(self.cfg["eval_batch_size"])
        ls, fs = [], []
        for i in range(0, len(x), bs):
            lg, f = self._strong_eval(tf.constant(x[i : i + bs]))
            ls.append(lg.numpy())
            fs.append(f.numpy().reshape(len(f), -1))
        return np.concatenate(ls), np.concatenate(fs)

    def val_accuracy(self) -> dict:
        r, lg = self.predict(self.x_val)
        return summarize(r, lg, self.y_val)

    # ---------------------------------------------------------------- state
    def state_arrays(self) -> dict[str, np.ndarray]:
        a = {}
        a.update(prefixed("strong", self.strong.get_state()))
        a.update(prefixed("selector", self.selector.get_state()))
        a.update(prefixed("classifiers", self.classifiers.get_state()))
        if self.generalist is not None:
            a.update(prefixed("generalist", self.generalist.get_state()))
        for name, opt in self.opts.items():
            a.update(prefixed(f"opt.{name}", opt.get_state()))
        if self.clusters is not None:
            a["clusters"] = self.clusters
        if self.best_state is not None:
            a.update(prefixed("best", self.best_state))
        return a

    def save(self, stage_done: str | None = None) -> None:
        path = self.ckpt_dir / "latest.npz"
        save_checkpoint(path, self.state_arrays(), self.progress)
        if stage_done is not None:
            shutil.copyfile(path, self.ckpt_dir / f"{stage_done}.npz")

    def resume(self) -> bool:
        path = self.ckpt_dir / "latest.npz"
        if not path.exists():
            return False
        arrays, progress = load_checkpoint(path)
        self.progress = progress
        self.strong.set_state(unprefixed("strong", arrays))
        self.selector.set_state(unprefixed("selector", arrays))
        self.classifiers.set_state(unprefixed("classifiers", arrays))
        if self.generalist is not None:
            self.generalist.set_state(unprefixed("generalist", arrays))
        self._arrays = arrays
        self.clusters = arrays.get("clusters")
        best = unprefixed("best", arrays)
        self.best_state = best or None
        return True

    def optimizer(self, name: str, kind: str, variables) -> Optimizer:
        """Create (or restore from the resumed checkpoint) the optimiser ``name``."""
        opt = Optimizer(kind, variables, name)
        arrays = self._arrays
        if arrays is not None:
            st = unprefixed(f"opt.{name}", arrays)
            if st:
                opt.set_state(st)
        self.opts[name] = opt
        return opt

    def begin(self, stage: str) -> int:
        """Epochs of ``stage`` already done (0 unless resuming inside it)."""
        if self.progress["stage"] != stage:
            self.progress["stage"], self.progress["epoch"] = stage, 0
        return int(self.progress["epoch"])

    def finish(self, stage: str) -> None:
        self.progress["done"].append(stage)
        idx = STAGES.index(stage)
        self.progress["stage"] = STAGES[idx + 1] if idx + 1 < len(STAGES) else "finished"
        self.progress["epoch"] = 0
        # optimiser state of a finished stage is not needed any more
        for name in [n for n in self.opts if n.startswith(stage)]:
            del self.opts[name]
        self._arrays = None
        self.save(stage_done=stage)

    def epoch_done(self, stage: str, epoch: int, record: dict | None = None) -> None:
        self.progress["epoch"] = epoch + 1
        if record is not None:
            self.progress["history"].append(record)
        self.save()

    def done(self, stage: str) -> bool:
        return stage in self.progress["done"]


# -------------------------------------------------------------------- metrics


def summarize(route_logits: np.ndarray, cls_logits: np.ndarray, y: np.ndarray) -> dict:
    route = route_logits.argmax(1)
    preds = cls_logits.argmax(2)  # [N, K]
    right = preds == y[:, None]
    chosen = preds[np.arange(len(y)), route]
    return {
        "ditmos": float((chosen == y).mean()),
        "union": float(right.any(1).mean()),
        "classifiers": [float(v) for v in right.mean(0)],
        "routing_to_best": float(right[np.arange(len(y)), route].mean()),
    }


# -------------------------------------------------------------------- stages


def _lr(cfg_stage: dict, epoch: int) -> tf.Tensor:
    return tf.constant(lr_at(cfg_stage["lr"], epoch, cfg_stage["lr_halve_every"]), tf.float32)


def _supervised_epochs(
    tr: Trainer, stage: str, trainable, make_step, validate, labels: np.ndarray | None = None
) -> None:
    """The epoch loop of the supervised stages (strong model, selector pre-training).

    ``make_step(optimizer)`` returns the compiled step ``(x, y, lr) -> loss``;
    ``validate(mean_loss)`` returns the epoch record's extra fields and the
    progress text.  Each epoch is checkpointed, so a resumed stage continues
    at its next epoch.
    """
    s = tr.cfg[stage]
    labels = tr.y_train if labels is None else labels
    start = tr.begin(stage)
    opt = tr.optimizer(stage, s["optimizer"], trainable)
    step = make_step(opt)
    tr.rep.start_stage(stage, s["epochs"], start)
    for ep in range(start, s["epochs"]):
        lr = _lr(s, ep)
        tot, n = 0.0, 0
        x_ep = tr.train_inputs(stage, ep)
        for idx in tr.batches(len(tr.x_train), s["batch_size"], tr.rng(stage, ep)):
            tot += float(step(x_ep[idx], labels[idx], lr))
            n += 1
        extra, text = validate(tot / max(n, 1))
        tr.epoch_done(stage, ep, {"stage": stage, "epoch": ep, "loss": tot / max(n, 1), **extra})
        tr.rep.advance(text)


def train_strong(tr: Trainer) -> None:
    """Stage 1: the strong model, trained on all training data with cross-entropy."""
    stage = "strong"
    if tr.done(stage):
        return

    def validate(loss: float) -> tuple[dict, str]:
        lg, _ = tr.strong_predict(tr.x_val)
        acc = float((lg.argmax(1) == tr.y_val).mean())
        return {"val_acc": acc}, f"loss {loss:.3f} val {acc:.3f}"

    _supervised_epochs(tr, stage, tr.strong.trainable, tr._strong_step, validate)
    tr.rep.end_stage()
    tr.finish(stage)


def train_generalist(tr: Trainer) -> None:
    """Stage 2 (when ``generalist.epochs`` > 0): the selector's shared blocks
    and one classifier head trained together on all training data, as one
    network (optionally distilled from the strong model).  The epoch best on
    validation is copied into all K heads: a DiTMoS with identical heads,
    whatever the routing, so it is a model-selection candidate (``fallback``)
    that later stages have to beat on validation."""
    stage = "generalist"
    if tr.done(stage):
        return
    if tr.generalist is None:
        tr.finish(stage)
        return
    g = tr.cfg[stage]
    average = min(int(g.get("average_epochs", 0)), int(g["epochs"]))
    start = tr.begin(stage)
    opt = tr.optimizer(stage, g["optimizer"], tr.selector.trunk_variables(tr.trunk_blocks) + tr.generalist.trainable)
    step = tr._generalist_step(opt)
    teacher = (
        tr.strong_predict(tr.x_train)[0].astype(np.float32)
        if g["distill"] > 0
        else np.zeros((len(tr.x_train), tr.num_classes), np.float32)
    )
    bs = int(tr.cfg["eval_batch_size"])

    def run_epoch(ep: int, restart: int = 0) -> tuple[float, float]:
        lr = _lr(g, ep)
        tot, n = 0.0, 0
        x_ep = tr.train_inputs(stage, ep, restart)
        for idx in tr.batches(len(tr.x_train), g["batch_size"], tr.rng(stage, ep, restart)):
            tot += float(step(x_ep[idx], tr.y_train[idx], teacher[idx], lr))
            n += 1
        if g.get("precise_bn", False):  # statistics of the epoch's final weights, not a running mean
            _generalist_bn(tr, tr.rng(stage, ep, 2000 + restart))
        lg = np.concatenate(
            [tr._generalist_eval(tf.constant(tr.x_val[i : i + bs])).numpy() for i in range(0, len(tr.x_val), bs)]
        )
        acc = float((lg.argmax(1) == tr.y_val).mean())
        best = tr.progress.get("generalist_best")
        if best is None or acc > best["val_acc"]:
            tr.progress["generalist_best"] = {"val_acc": acc, "epoch": ep + 1}
            tr.best_state = {
                **prefixed("gen_selector", tr.selector.get_state()),
                **_average_part(tr.best_state),
                **prefixed("gen_head", tr.generalist.get_state()),
            }
        if average and ep >= g["epochs"] - average:  # a running sum of the last epochs
            tr.best_state = _accumulate(tr, tr.best_state or {})
        return tot / max(n, 1), acc

    restarts, probe = int(g.get("restarts", 1)), min(int(g.get("probe_epochs", 0)), g["epochs"])
    tr.rep.start_stage(stage, g["epochs"] + (restarts - 1) * probe if start == 0 else g["epochs"], start)
    if start == 0 and restarts > 1 and probe > 0:
        start = _generalist_restarts(tr, opt, run_epoch, restarts, probe)
    for ep in range(start, g["epochs"]):
        loss, acc = run_epoch(ep)
        tr.epoch_done(stage, ep, {"stage": stage, "epoch": ep, "loss": loss, "val_acc": acc})
        tr.rep.advance(f"loss {loss:.3f} val {acc:.3f}")
    if average and tr.best_state is not None:  # the weight average of the last epochs
        _use_average(tr, average)
    elif tr.best_state is not None:  # the best epoch on validation
        tr.selector.set_state(unprefixed("gen_selector", tr.best_state))
        tr.generalist.set_state(unprefixed("gen_head", tr.best_state))
    tr.best_state = None
    tr.classifiers.set_state(Bank.replicate(tr.generalist.get_state(), tr.arch.K))
    v = tr.val_accuracy()
    _consider_best(tr, v, "generalist")
    tr.rep.end_stage(f"val {v['ditmos']:.3f}")
    tr.finish(stage)


def _average_part(state: dict | None) -> dict:
    """The running weight sums kept inside ``best_state`` (empty if none)."""
    if not state:
        return {}
    return {k: v for k, v in state.items() if k.startswith(("avg_selector/", "avg_head/"))}


def _accumulate(tr: Trainer, state: dict) -> dict:
    """``state`` with the current selector and generalist weights added to its
    running sums (kept in ``best_state`` so that they are checkpointed)."""
    out = dict(state)
    for prefix, bank in (("avg_selector", tr.selector), ("avg_head", tr.generalist)):
        for k, v in prefixed(prefix, bank.get_state()).items():
            out[k] = out[k] + v if k in out else v.copy()
    return out


def _generalist_bn(tr: Trainer, rng: np.random.Generator, n: int = 2048) -> None:
    """Set the batch-norm statistics of the selector and the generalist head to
    those of (up to) ``n`` training windows, in one pass."""
    idx = np.sort(rng.permutation(len(tr.x_train))[:n])
    x = tf.constant(tr.x_train[idx])
    moms = tr.selector.momentum, tr.generalist.momentum
    tr.selector.momentum = tr.generalist.momentum = 0.0
    try:
        _, sb = tr.selector(x, training=True, return_blocks=True)
        tr.generalist(x, training=True, side=tr._side(sb))
    finally:
        tr.selector.momentum, tr.generalist.momentum = moms


def _use_average(tr: Trainer, n: int) -> None:
    """Load the mean of the last ``n`` epochs' weights into the selector and the
    generalist and re-estimate their batch-norm statistics on training data
    (averaged weights need their own statistics)."""
    st = tr.best_state
    tr.selector.set_state({k: v / n for k, v in unprefixed("avg_selector", st).items()})
    tr.generalist.set_state({k: v / n for k, v in unprefixed("avg_head", st).items()})
    _generalist_bn(tr, tr.rng("generalist", 0, 98))
    bs = int(tr.cfg["eval_batch_size"])
    lg = np.concatenate(
        [tr._generalist_eval(tf.constant(tr.x_val[i : i + bs])).numpy() for i in range(0, len(tr.x_val), bs)]
    )
    tr.progress["generalist_average"] = {"epochs": n, "val_acc": float((lg.argmax(1) == tr.y_val).mean())}


def _generalist_restarts(tr: Trainer, opt: Optimizer, run_epoch, restarts: int, probe: int) -> int:
    """Train ``restarts`` generalists from different initialisations for ``probe``
    epochs each and keep the one best on VALIDATION (a tiny network whose
    few channels die at initialisation never recovers; a restart does).
    Restart 0 is the run's own initialisation.  The probe is one unit for
    resume: an interrupted probe is repeated, with the same outcome."""
    stage = "generalist"
    arch, seed = tr.arch, tr.seed
    side = {b: arch.selector.blocks[b - 1].filters for b in arch.shared_blocks}
    eps, mom = arch.bn_epsilon, float(tr.cfg["bn_momentum"])
    first = (tr.selector.get_state(), tr.generalist.get_state(), opt.get_state())
    won, records = None, []
    for r in range(restarts):
        if r == 0:
            sel_st, gen_st = first[0], first[1]
        else:  # fresh initialisations with their own seeds
            sel_st = (
                Bank(arch.selector, tr.C, arch.K, 1, seed=seed * 1000 + 500 + r, bn_epsilon=eps, bn_momentum=mom)
                .build(tr.T)
                .get_state()
            )
            gen_st = (
                Bank(
                    arch.classifier,
                    tr.C,
                    tr.num_classes,
                    1,
                    seed=seed * 1000 + 700 + r,
                    side_channels=side,
                    bn_epsilon=eps,
                    bn_momentum=mom,
                )
                .build(tr.T)
                .get_state()
            )
        tr.selector.set_state(sel_st)
        tr.generalist.set_state(gen_st)
        opt.set_state(first[2])
        tr.progress.pop("generalist_best", None)
        tr.best_state = None
        for ep in range(probe):
            loss, acc = run_epoch(ep, r)
            tr.rep.advance(f"restart {r + 1}/{restarts} loss {loss:.3f} val {acc:.3f}")
        acc = tr.progress["generalist_best"]["val_acc"]  # the restart's best epoch
        records.append({"stage": stage, "restart": r, "epoch": probe - 1, "loss": loss, "val_acc": acc})
        if won is None or acc > won[0]:
            won = (
                acc,
                r,
                tr.selector.get_state(),
                tr.generalist.get_state(),
                opt.get_state(),
                tr.progress["generalist_best"],
                tr.best_state,
            )
    acc, r, sel_st, gen_st, opt_st, best, best_state = won
    tr.selector.set_state(sel_st)
    tr.generalist.set_state(gen_st)
    opt.set_state(opt_st)
    tr.progress["generalist_best"], tr.best_state = best, best_state
    tr.progress["generalist_restart"] = {"picked": r, "val_acc": acc, "restarts": restarts, "probe_epochs": probe}
    tr.progress["history"].extend(records[:-1])
    tr.epoch_done(stage, probe - 1, records[-1])
    return probe


def confusion_groups(logits: np.ndarray, y: np.ndarray, K: int, num_classes: int) -> np.ndarray:
    """Group of every class (0..K-1): classes the model confuses go together.

    Average-linkage agglomeration on the symmetric, row-normalised confusion
    matrix; a group holds at most ceil(classes / K) classes while any pair
    still fits (no chaining into one big group), and among equally confused
    pairs the smallest merged group wins, so separable classes spread evenly
    over the groups."""
    conf = np.zeros((num_classes, num_classes))
    np.add.at(conf, (y, logits.argmax(1)), 1.0)
    rate = conf / np.maximum(conf.sum(1, keepdims=True), 1.0)
    sim = rate + rate.T
    np.fill_diagonal(sim, 0.0)
    groups = [[c] for c in range(num_classes)]
    cap = -(-num_classes // K)
    while len(groups) > K:
        best = None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                size = len(groups[i]) + len(groups[j])
                link = sim[np.ix_(groups[i], groups[j])].mean()
                key = (size <= cap, link, -size, -i, -j)
                if best is None or key > best[0]:
                    best = (key, i, j)
        _, i, j = best
        groups[i] = sorted(groups[i] + groups[j])
        del groups[j]
    out = np.empty(num_classes, np.int64)
    for k, members in enumerate(sorted(groups)):
        out[members] = k
    return out


def cluster_purity(clusters: np.ndarray, y: np.ndarray, K: int, num_classes: int) -> dict:
    per, sizes, majority = [], [], []
    total_major = 0
    for k in range(K):
        yk = y[clusters == k]
        sizes.append(int(len(yk)))
        if len(yk) == 0:
            per.append(0.0)
            majority.append(None)
            continue
        counts = np.bincount(yk, minlength=num_classes)
        per.append(float(counts.max() / len(yk)))
        majority.append(int(counts.argmax()))
        total_major += int(counts.max())
    return {
        "purity": float(total_major / max(len(y), 1)),
        "per_cluster": per,
        "sizes": sizes,
        "majority_class": majority,
    }


def _kmeans(feats: np.ndarray, K: int, n_init: int, max_iter: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=K, n_init=n_init, max_iter=max_iter, random_state=seed)
    return km.fit_predict(feats.astype(np.float64)).astype(np.int64)


def split_clusters(
    method: str,
    y: np.ndarray,
    K: int,
    *,
    feats: np.ndarray | None = None,
    n_init: int = 10,
    max_iter: int = 300,
    seed: int = 0,
    logits: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster index (0..K-1) of every training sample.

    ``kmeans`` (the method): KMeans on the strong model's last conv block
    output.  ``class_kmeans``: KMeans into K sub-clusters inside each class;
    sub-clusters are ranked by their mean on the features' first principal
    axis and rank j of every class joins cluster j, so every cluster holds
    every class (with at least K samples per class).  ``random``: equal
    random parts (an ablation).  ``confusion``: cluster k holds the classes
    of group k of :func:`confusion_groups` on the strong model's ``logits``
    (a target the selector can learn: the coarse class); with more clusters
    than classes, the largest cluster is split in two by KMeans on ``feats``
    until there are K.
    """
    n = len(y)
    if method == "confusion":
        num_classes = int(max(y.max() + 1, logits.shape[1]))
        clusters = confusion_groups(logits, y, min(K, num_classes), num_classes)[y]
        for k in range(min(K, num_classes), K):
            big = np.flatnonzero(clusters == np.bincount(clusters).argmax())
            sub = _kmeans(feats[big], 2, n_init, max_iter, seed + k)
            clusters[big[sub == 1]] = k
        return clusters
    if method == "random":
        rng = np.random.default_rng([seed, 4242])
        clusters = np.empty(n, np.int64)
        clusters[rng.permutation(n)] = np.arange(n) % K
        return clusters
    if method == "kmeans":
        return _kmeans(feats, K, n_init, max_iter, seed)
    if method != "class_kmeans":
        raise DitmosError(f"unknown split method '{method}'")
    clusters = np.empty(n, np.int64)
    centred = feats - feats.mean(0)
    _, _, vt = np.linalg.svd(centred[:: max(1, n // 4000)], full_matrices=False)
    axis = vt[0]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        kc = min(K, len(idx))
        sub = _kmeans(feats[idx], kc, n_init, max_iter, seed + int(c))
        pos = np.array([(centred[idx][sub == j] @ axis).mean() for j in range(kc)])
        rank = np.empty(kc, np.int64)
        rank[np.argsort(pos)] = np.arange(kc)
        clusters[idx] = rank[sub]
    return clusters


def diverse_split(tr: Trainer) -> None:
    """Stage 2: assign every training sample to one of K clusters (:func:`split_clusters`)."""
    stage = "split"
    if tr.done(stage):
        return
    sp = tr.cfg["split"]
    K = tr.arch.K
    tr.rep.start_stage(stage, 1)
    logits, feats = (None, None) if sp["method"] == "random" else tr.strong_predict(tr.x_train)
    clusters = split_clusters(
        sp["method"],
        tr.y_train,
        K,
        feats=feats,
        n_init=sp["n_init"],
        max_iter=sp["max_iter"],
        seed=tr.seed,
        logits=logits,
    )
    counts = np.bincount(clusters, minlength=K)
    if (counts < 2).any():
        raise DitmosError(
            f"the {sp['method']} split left cluster(s) {np.flatnonzero(counts < 2).tolist()} "
            f"with fewer than 2 samples (sizes {counts.tolist()}); lower architecture.K"
        )
    tr.clusters = clusters
    tr.progress["cluster_info"] = cluster_purity(clusters, tr.y_train, K, tr.num_classes)
    info = tr.progress["cluster_info"]
    tr.rep.advance()
    tr.rep.end_stage(f"purity {info['purity']:.3f} sizes {info['sizes']}")
    tr.finish(stage)


def pretrain_classifiers(tr: Trainer) -> None:
    """Stage 3: classifier k trained only on cluster k, all K in one step.

    Every step feeds each classifier a batch from its own cluster; an epoch
    is as many steps as the largest cluster needs (smaller clusters cycle).
    The selector is frozen here (its BN statistics are first calibrated on
    training data so its random-init features are well scaled).
    """
    stage = "classifier_pretrain"
    if tr.done(stage):
        return
    s = tr.cfg[stage]
    K, B = tr.arch.K, s["batch_size"]
    start = tr.begin(stage)
    if start == 0 and tr.generalist is None:
        _calibrate_bn(tr.selector, tr.x_train, tr.rng(stage, 0, 99))
    if float(s.get("out_weight", 0.0)) > 0:
        _pretrain_weighted(tr, stage, start)
        return
    opt = tr.optimizer(stage, s["optimizer"], tr.classifiers.trainable)
    step = tr._cls_pretrain_step(opt)
    members = [np.flatnonzero(tr.clusters == k) for k in range(K)]
    steps = int(np.ceil(max(len(m) for m in members) / B))
    _, feats = tr.selector_outputs(tr.x_train)  # the selector is frozen in this stage
    tr.rep.start_stage(stage, s["epochs"], start)
    for ep in range(start, s["epochs"]):
        x_ep = tr.train_inputs(stage, ep)
        if x_ep is not tr.x_train:  # noisy windows: the frozen selector's features of them
            _, feats = tr.selector_outputs(x_ep)
        rng = tr.rng(stage, ep)
        streams = []
        for m in members:
            reps = int(np.ceil(steps * B / len(m)))
            streams.append(np.concatenate([rng.permutation(m) for _ in range(reps)])[: steps * B])
        idx = np.stack(streams, axis=1).reshape(steps, B, K)
        lr = _lr(s, ep)
        tot = 0.0
        for i in range(steps):
            xb = x_ep[idx[i]].transpose(0, 2, 1, 3)  # [B, T, K, C]
            fb = [f[idx[i]].transpose(0, 2, 1, 3) for f in feats]  # [B, T_b, K, F]
            tot += float(step(xb, tr.y_train[idx[i]], fb, lr))
        tr.epoch_done(stage, ep, {"stage": stage, "epoch": ep, "loss": tot / steps})
        tr.rep.advance(f"loss {tot / steps:.3f}")
    tr.rep.end_stage()
    tr.finish(stage)


def _pretrain_weighted(tr: Trainer, stage: str, start: int) -> None:
    """Overlapping clusters: every head trains on all data, samples of its own
    cluster with weight 1 and all others with ``out_weight`` (1 = K copies
    of the generalist's training, 0 = the class-pure pre-training)."""
    s = tr.cfg[stage]
    K = tr.arch.K
    wts = np.full((len(tr.x_train), K), float(s["out_weight"]), np.float32)
    wts[np.arange(len(wts)), tr.clusters] = 1.0
    opt = tr.optimizer(stage, s["optimizer"], tr.classifiers.trainable)
    step = tr._cls_weighted_step(opt)
    _, feats = tr.selector_outputs(tr.x_train)
    tr.rep.start_stage(stage, s["epochs"], start)
    for ep in range(start, s["epochs"]):
        lr = _lr(s, ep)
        tot, n = 0.0, 0
        for idx in tr.batches(len(tr.x_train), s["batch_size"], tr.rng(stage, ep)):
            tot += float(step(tr.x_train[idx], tr.y_train[idx], wts[idx], [f[idx] for f in feats], lr))
            n += 1
        tr.epoch_done(stage, ep, {"stage": stage, "epoch": ep, "loss": tot / max(n, 1)})
        tr.rep.advance(f"loss {tot / max(n, 1):.3f}")
    tr.rep.end_stage()
    tr.finish(stage)


def _calibrate_bn(bank: Bank, x: np.ndarray, rng: np.random.Generator, n: int = 2048) -> None:
    """Set BN moving statistics to those of a large training batch (one pass)."""
    idx = np.sort(rng.permutation(len(x))[:n])
    mom = bank.momentum
    bank.momentum = 0.0
    try:
        bank(tf.constant(x[idx]), training=True)
    finally:
        bank.momentum = mom


def pretrain_selector(tr: Trainer) -> None:
    """Stage 4: selector towards the per-sample best classifier, classifiers frozen."""
    stage = "selector_pretrain"
    if tr.done(stage):
        return

    def validate(loss: float) -> tuple[dict, str]:
        v = tr.val_accuracy()
        return {"val": v}, f"val ditmos {v['ditmos']:.3f} union {v['union']:.3f}"

    _supervised_epochs(tr, stage, tr.selector_variables(), tr._selector_step, validate, labels=tr.routing_labels())
    v = tr.val_accuracy()
    _consider_best(tr, v, "selector_pretrain")
    tr.rep.end_stage(f"val ditmos {v['ditmos']:.3f}")
    tr.finish(stage)


def _consider_best(tr: Trainer, v: dict, where: str) -> None:
    best = tr.progress["best"]
    if where == "generalist" and not tr.cfg["generalist"]["fallback"]:
        return
    if best is None or v["ditmos"] > best["val_ditmos"]:
        tr.progress["best"] = {"val_ditmos": v["ditmos"], "at": where, "val": v}
        st = {}
        st.update(prefixed("selector", tr.selector.get_state()))
        st.update(prefixed("classifiers", tr.classifiers.get_state()))
        tr.best_state = st


def adversarial(tr: Trainer) -> None:
    """Stage 5: rounds of selector epochs then classifier epochs.

    Progress counts epochs over all rounds (selector and classifier epochs
    alike); each model's learning rate halves every ``lr_halve_every`` of
    its own epochs.  Validation accuracy of the composed model is measured
    after every epoch; the best state is kept for :func:`select_model`.
    """
    stage = "adversarial"
    if tr.done(stage):
        return
    a = tr.cfg[stage]
    se, ce = a["selector_epochs"], a["classifier_epochs"]
    per_round = se + ce
    total = a["rounds"] * per_round
    start = tr.begin(stage)
    sel_opt = tr.optimizer(f"{stage}.selector", a["optimizer"], tr.selector_variables())
    route_labels = tr.routing_labels()
    cls_opt = tr.optimizer(f"{stage}.classifiers", a["optimizer"], tr.classifiers.trainable)
    sel_step = tr._selector_step(sel_opt)
    cls_step = tr._adv_classifier_step(cls_opt)
    tr.rep.start_stage(stage, total, start)
    for ep in range(start, total):
        rnd, within = divmod(ep, per_round)
        is_sel = within < se
        own_epoch = rnd * (se if is_sel else ce) + (within if is_sel else within - se)
        lr = _lr(a, own_epoch)
        tot, n = 0.0, 0
        x_ep = tr.train_inputs(stage, ep)
        if not is_sel:  # the selector is frozen for the whole epoch: run it once
            routes, feats = tr.selector_outputs(x_ep)
        for idx in tr.batches(len(tr.x_train), a["batch_size"], tr.rng(stage, ep)):
            if is_sel:
                loss = sel_step(x_ep[idx], route_labels[idx], lr)
            else:
                loss = cls_step(x_ep[idx], tr.y_train[idx], routes[idx], [f[idx] for f in feats], lr)
            tot += float(loss)
            n += 1
        v = tr.val_accuracy()
        who = "selector" if is_sel else "classifiers"
        _consider_best(tr, v, f"round {rnd + 1} {who} epoch {own_epoch + 1}")
        tr.epoch_done(
            stage, ep, {"stage": stage, "epoch": ep, "round": rnd, "trains": who, "loss": tot / max(n, 1), "val": v}
        )
        tr.rep.advance(f"r{rnd + 1} {who[:3]} val {v['ditmos']:.3f} union {v['union']:.3f}")
    tr.rep.end_stage()
    tr.finish(stage)


def select_model(tr: Trainer) -> None:
    """Stage 6: restore the state with the best VALIDATION accuracy (never test)."""
    stage = "select"
    if tr.done(stage):
        return
    tr.rep.start_stage(stage, 1)
    if tr.best_state is not None:
        tr.selector.set_state(unprefixed("selector", tr.best_state))
        tr.classifiers.set_state(unprefixed("classifiers", tr.best_state))
    v = tr.val_accuracy()
    tr.rep.advance()
    best = tr.progress["best"]
    tr.rep.end_stage(f"picked {best['at'] if best else 'final'} (val ditmos {v['ditmos']:.3f})")
    tr.finish(stage)


STAGE_FUNCTIONS = {
    "strong": train_strong,
    "generalist": train_generalist,
    "split": diverse_split,
    "classifier_pretrain": pretrain_classifiers,
    "selector_pretrain": pretrain_selector,
    "adversarial": adversarial,
    "select": select_model,
}
