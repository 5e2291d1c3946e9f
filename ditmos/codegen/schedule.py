"""The composed DiTMoS inference as one sequence of steps over one arena.

Timeline: the selector's layers, one routing step (argmax of the route
logits), then the chosen classifier's layers.  The K classifiers share the
same steps as mutually exclusive groups, so one static plan covers every
route.  Activation *values* (the buffers) get live ranges over this timeline
and go to :mod:`ditmos.codegen.planner`.

Strategies:

- ``none`` / ``greedy``: concatenations are materialised (a copy step into
  their own buffer, as an interpreter would); placement without reuse /
  greedy.
- ``slicing`` (DiTMoS network slicing): a concatenation is never built: the
  conv reading ``[own ; selector]`` features is one multi-part ``dtm_conv1d_s8``
  call reading each part from its own buffer into one int32 accumulator.
  The selector features a classifier needs are the only values that outlive
  the selector.  With ``recompute`` the classifier re-runs the selector's
  prefix that produces a shared feature map right before using it, so that
  feature map need not be kept alive across the whole selector.

The caller's input window is read in place (never copied into the arena).
Reshape ops are aliases.  A shared feature map whose classifier-side
quantisation differs from the selector's (manifest link ``requantize``) is
requantised in place (``dtm_requantize_s8`` supports output == input) before
the classifier reads it: only one classifier runs per inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ditmos.errors import DitmosError

from ditmos.codegen import lowering as L
from ditmos.codegen import ops
from ditmos.codegen.ir import Graph
from ditmos.codegen.planner import Buffer, Plan, place

INPUT = "input"  # the caller's window (external, read-only)
STRATEGIES = ("slicing", "greedy", "none")


@dataclass
class Value:
    name: str
    size: int
    group: str | None
    first: int = -1
    last: int = -1


@dataclass
class Step:
    """One thing the generated code does.  ``kind``: ``call`` (a kernel call),
    ``copy`` (materialise a concatenation), ``route`` (argmax of the route
    logits), ``exit`` (a network's early-exit test: reads the exit's logits
    and confidence) or ``result`` (read a program's outputs)."""

    kind: str
    program: str
    call: L.Call | None = None
    parts: list[tuple[str, int]] = field(default_factory=list)  # copy: (value, channels)
    rows: int = 0
    output: str = ""
    reads: list[str] = field(default_factory=list)
    index: int = -1  # position on the composed timeline
    layer_index: int = -1  # profiling index (calls and copies only)
    recompute: bool = False


@dataclass
class Program:
    name: str  # selector / classifier_<k>
    steps: list[Step]
    outputs: dict[str, str]  # output name (route, feat_b, logits) -> value


@dataclass
class Schedule:
    strategy: str
    programs: dict[str, Program]
    values: dict[str, Value]
    num_layers: int
    recompute: list[str] = field(default_factory=list)
    plan: Plan | None = None

    def buffers(self) -> list[Buffer]:
        return [Buffer(v.name, v.size, v.first, v.last, v.group) for v in self.values.values() if v.name != INPUT]


@dataclass
class _Lazy:
    """A classifier input produced on first use (a recomputed selector slice)."""

    make: object


class _Builder:
    def __init__(self, program: str, group: str | None, slicing: bool, values: dict):
        self.program, self.group, self.slicing = program, group, slicing
        self.values = values
        self.steps: list[Step] = []

    def new_value(self, name: str, size: int) -> str:
        if name in self.values:
            raise AssertionError(f"duplicate value {name}")
        self.values[name] = Value(name, int(size), self.group)
        return name

    def single(self, ref, graph: Graph, tensor: int, tag: str) -> str:
        """A value name for ``ref``, materialising a concatenation if needed."""
        if isinstance(ref, str):
            return ref
        t = graph.tensor(tensor)
        out = self.new_value(f"{tag}_cat", t.nbytes)
        self.steps.append(
            Step(
                "copy",
                self.program,
                parts=list(ref),
                output=out,
                rows=int(t.shape[0]) if len(t.shape) == 2 else 1,
                reads=[p[0] for p in ref],
            )
        )
        return out

    def run(self, graph: Graph, env: dict, prefix: str, only: set | None = None, recompute: bool = False) -> dict:
        """Emit steps for ``graph``'s ops (or the subset ``only``)."""
        T = graph.tensors
        for n, op in enumerate(graph.ops):
            if only is not None and n not in only:
                continue
            tag = f"{prefix}_t{op.outputs[0]}"
            for i in op.inputs:
                if isinstance(env.get(i), _Lazy):
                    env[i] = env[i].make()
            category = ops.by_kind(op.kind).schedule
            if category == "alias":
                ref = env[op.inputs[0]]
                y = T[op.outputs[0]]
                if not isinstance(ref, str):
                    chans = sum(c for _, c in ref)
                    if len(y.shape) != 2 or y.shape[-1] != chans:
                        ref = self.single(ref, graph, op.inputs[0], tag + "_in")
                env[op.outputs[0]] = ref
                continue
            if category == "concat":
                parts = []
                for i in op.inputs:
                    r = env[i]
                    parts.extend([(r, T[i].shape[-1])] if isinstance(r, str) else r)
                env[op.outputs[0]] = parts
                if not self.slicing:
                    env[op.outputs[0]] = self.single(parts, graph, op.outputs[0], tag)
                continue
            x = T[op.inputs[0]]
            y = T[op.outputs[0]]
            if category == "parts":
                ref = env[op.inputs[0]]
                if isinstance(ref, str):
                    parts = [(ref, x.shape[-1])]
                elif len(ref) > L.CONV_MAX_PARTS:
                    parts = [(self.single(ref, graph, op.inputs[0], tag + "_in"), x.shape[-1])]
                else:
                    parts = ref
                out = self.new_value(tag, y.nbytes)
                call = ops.lower(graph, op, [(v, c, int(x.zero_point)) for v, c in parts])
            else:
                srcs = []
                for j, i in enumerate(op.inputs):
                    env[i] = self.single(env[i], graph, i, f"{tag}_in{j}")  # build once
                    srcs.append(env[i])
                out = self.new_value(tag, y.nbytes)
                call = ops.lower(graph, op, srcs)
            call.output = out
            self.steps.append(
                Step("call", self.program, call=call, output=out, reads=list(call.inputs), recompute=recompute)
            )
            env[op.outputs[0]] = out
        return env


def _io_by_name(manifest_sub: dict, graph: Graph, key: str) -> dict[str, int]:
    """Manifest input/output name -> tensor index in ``graph``."""
    lst = graph.inputs if key == "inputs" else graph.outputs
    res = {}
    for row in manifest_sub[key]:
        pos = int(row["index"])
        if pos >= len(lst):
            raise DitmosError(f"manifest {key} '{row['name']}' has index {pos} but {graph.path} has {len(lst)} {key}")
        res[row["name"]] = lst[pos]
    return res


def _ancestors(graph: Graph, tensor: int) -> set[int]:
    """Indices of the ops needed to compute ``tensor``."""
    prod = {o: n for n, op in enumerate(graph.ops) for o in op.outputs}
    need, todo = set(), [tensor]
    while todo:
        t = todo.pop()
        if t in prod and prod[t] not in need:
            need.add(prod[t])
            todo.extend(i for i in graph.ops[prod[t]].inputs if i >= 0)
    return need


@dataclass(frozen=True)
class Quant:
    scale: float
    zero_point: int

    @classmethod
    def of(cls, d: dict) -> Quant:
        return cls(float(d["scale"]), int(d["zero_point"]))

    def same_as(self, other: Quant) -> bool:
        return (np.float32(self.scale), self.zero_point) == (np.float32(other.scale), other.zero_point)


@dataclass
class _Selector:
    """The selector as the classifiers see it: its graph, named inputs and
    outputs, and (composed) the values holding its shared features."""

    graph: Graph
    inputs: dict[str, int]
    outputs: dict[str, int]
    features: dict[str, str] = field(default_factory=dict)


@dataclass
class _Composition:
    """What every part of one :func:`build` shares."""

    manifest: dict
    graphs: dict[str, Graph]
    slicing: bool
    recompute: tuple[str, ...]
    only: str | None
    values: dict[str, Value]
    links: list[dict]

    def composed(self) -> bool:
        return self.only is None


def build(
    manifest: dict,
    graphs: dict[str, Graph],
    strategy: str = "slicing",
    recompute: tuple[str, ...] = (),
    alignment: int = 8,
    only: str | None = None,
) -> Schedule:
    """Build the composed schedule (or, with ``only``, one sub-model alone)
    and its memory plan."""
    if strategy not in STRATEGIES:
        raise DitmosError(f"unknown memory strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if recompute and strategy != "slicing":
        raise DitmosError("recomputing selector slices needs the 'slicing' strategy")
    comp = _Composition(
        manifest,
        graphs,
        strategy == "slicing",
        tuple(recompute),
        only,
        {INPUT: Value(INPUT, 0, None)},
        _links(manifest),
    )
    programs: dict[str, Program] = {}
    if manifest.get("kind", "ditmos") == "network":
        if recompute:
            raise DitmosError("recomputing selector slices needs a selector (DiTMoS models)")
        programs["network"] = _network_program(comp)
    else:
        sel = _selector(comp)
        if only in (None, "selector"):
            programs["selector"] = _selector_program(comp, sel)
        for k in range(int(manifest["K"])):
            name = f"classifier_{k}"
            if only in (None, name):
                programs[name] = _classifier_program(comp, sel, name)
    sched = Schedule(strategy, programs, comp.values, 0, list(recompute))
    _lifetimes(sched)
    sched.plan = place(sched.buffers(), "none" if strategy == "none" else "greedy", alignment)
    sched.plan.strategy = strategy
    sched.plan.check()
    return sched


def _selector(comp: _Composition) -> _Selector:
    g = comp.graphs["selector"]
    sub = comp.manifest["submodels"]["selector"]
    sel = _Selector(g, _io_by_name(sub, g, "inputs"), _io_by_name(sub, g, "outputs"))
    if set(sel.inputs) != {"window"} or "route" not in sel.outputs:
        raise DitmosError(
            "the selector must have the input 'window' and the output "
            f"'route' (manifest has {sorted(sel.inputs)} -> "
            f"{sorted(sel.outputs)})"
        )
    return sel


def _selector_program(comp: _Composition, sel: _Selector) -> Program:
    b = _Builder("selector", None, comp.slicing, comp.values)
    env = b.run(sel.graph, {sel.inputs["window"]: INPUT}, "selector")
    outs = {name: b.single(env[t], sel.graph, t, f"selector_out_{name}") for name, t in sel.outputs.items()}
    sel.features = {n: v for n, v in outs.items() if n != "route"}
    # Run alone, every output is a result that must survive to the end;
    # composed, the features live until the classifier reads them.
    reads = [outs["route"]] if comp.composed() else list(outs.values())
    b.steps.append(Step("route", "selector", reads=reads))
    return Program("selector", b.steps, outs)


def _classifier_program(comp: _Composition, sel: _Selector, name: str) -> Program:
    g = comp.graphs[name]
    sub = comp.manifest["submodels"][name]
    c_in, c_out = _io_by_name(sub, g, "inputs"), _io_by_name(sub, g, "outputs")
    if "window" not in c_in or "logits" not in c_out:
        raise DitmosError(
            f"{name} must have the input 'window' and the output "
            f"'logits' (manifest has {sorted(c_in)} -> {sorted(c_out)})"
        )
    b = _Builder(name, name if comp.composed() else None, comp.slicing, comp.values)
    env = {c_in["window"]: _window(comp, b, g, name, c_in["window"])}
    feeds = _FeedState(env={sel.inputs["window"]: INPUT})
    for in_name, t in c_in.items():
        if in_name != "window":
            env[t] = _feature_input(comp, sel, b, g, name, in_name, t, feeds)
    env = b.run(g, env, name)
    outs = {n: b.single(env[t], g, t, f"{name}_out_{n}") for n, t in c_out.items()}
    b.steps.append(Step("result", name, reads=[outs["logits"]]))
    return Program(name, b.steps, outs)


def _network_program(comp: _Composition) -> Program:
    """One network, in segments: the ops exit i needs (its logits and softmax
    confidence) that no earlier segment ran, then an ``exit`` step (the int8
    confidence test); the final segment ends in the ``result`` step.  Every
    path through the network is a prefix of this timeline, so the plan of the
    full timeline covers all of them: a value is only ever overwritten after
    its last reader on the longest path, and a path that stops at exit i reads
    nothing after exit i's step."""
    g = comp.graphs["network"]
    sub = comp.manifest["submodels"]["network"]
    g_in, g_out = _io_by_name(sub, g, "inputs"), _io_by_name(sub, g, "outputs")
    exits = list(comp.manifest.get("exits") or [])
    final = str(comp.manifest.get("final", "logits"))
    wanted = [e[k] for e in exits for k in ("logits", "confidence")] + [final]
    if set(g_in) != {"window"} or any(w not in g_out for w in wanted):
        raise DitmosError(
            f"the network must have the input 'window' and the outputs "
            f"{wanted} (manifest has {sorted(g_in)} -> {sorted(g_out)})"
        )
    b = _Builder("network", None, comp.slicing, comp.values)
    env: dict = {g_in["window"]: INPUT}
    done: set[int] = set()
    outs: dict[str, str] = {}

    def segment(names: list[str]) -> list[str]:
        need = set().union(*(_ancestors(g, g_out[n]) for n in names)) - done
        done.update(need)
        b.run(g, env, "network", only=need)
        got = []
        for n in names:
            outs[n] = b.single(env[g_out[n]], g, g_out[n], f"network_out_{n}")
            got.append(outs[n])
        return got

    for e in exits:
        b.steps.append(Step("exit", "network", reads=segment([e["logits"], e["confidence"]])))
    b.steps.append(Step("result", "network", reads=segment([final])))
    return Program("network", b.steps, outs)


def _window(comp: _Composition, b: _Builder, g: Graph, name: str, tensor: int) -> str:
    """The value a classifier reads its window from: the caller's input, or a
    requantised copy when the classifier quantises the window differently."""
    link = _link_for(comp.links, name, "window")
    if not (link and link.get("requantize")):
        return INPUT
    t = g.tensor(tensor)
    rq = b.new_value(f"{name}_window_rq", t.nbytes)
    fq, tq = Quant.of(link["from_quant"]), Quant.of(link["to_quant"])
    call = L.requantize_call(
        t.size, fq.scale, fq.zero_point, tq.scale, tq.zero_point, INPUT, f"{name}/requantize_window"
    )
    call.output = rq
    b.steps.append(Step("call", name, call=call, output=rq, reads=[INPUT]))
    return rq


@dataclass
class _FeedState:
    """Per classifier: the selector prefix already recomputed, and the
    selector buffers already requantised in place."""

    env: dict
    recomputed: set = field(default_factory=set)
    requantized: set = field(default_factory=set)


@dataclass
class _Feed:
    """How one classifier input is fed from a selector feature."""

    program: str
    input_name: str
    tensor: int
    feature: str
    requantize: bool
    from_quant: Quant
    to_quant: Quant


def _feature_input(
    comp: _Composition, sel: _Selector, b: _Builder, g: Graph, name: str, in_name: str, t: int, state: _FeedState
):
    """The env entry of a classifier's selector-feature input ``in_name``: a
    value name, or (recomputed features) a :class:`_Lazy` made on first use."""
    link = _link_for(comp.links, name, in_name)
    frm = str(link.get("from", "")) if link else ""
    if frm.startswith("selector:"):
        feat = frm.split(":", 1)[1]
    else:
        feat = in_name[len("sel_") :] if in_name.startswith("sel_") else None
    if feat is None or feat not in sel.outputs:
        raise DitmosError(
            f"{name} input '{in_name}' does not name a selector "
            f"output (expected a link from 'selector:<feature>' or "
            f"the name sel_<feature>)"
        )
    if not comp.composed():  # run alone: the feature is an input buffer
        return b.new_value(f"{name}_in_{in_name}", g.tensor(t).nbytes)
    subs = comp.manifest["submodels"]
    sel_row = next(o for o in subs["selector"]["outputs"] if o["name"] == feat)
    row = next(i for i in subs[name]["inputs"] if i["name"] == in_name)
    frm_q = Quant.of((link or {}).get("from_quant") or sel_row)
    to_q = Quant.of((link or {}).get("to_quant") or row)
    requant = bool(link["requantize"]) if link and "requantize" in link else not frm_q.same_as(to_q)
    feed = _Feed(name, in_name, t, feat, requant, frm_q, to_q)
    if feat in comp.recompute:
        return _Lazy(lambda: _feed(comp, sel, b, g, feed, state))
    return _feed(comp, sel, b, g, feed, state)


def _feed(comp: _Composition, sel: _Selector, b: _Builder, g: Graph, feed: _Feed, state: _FeedState) -> str:
    """Emit what makes ``feed``'s value (recomputation, requantisation) and name it."""
    recomputed = feed.feature in comp.recompute
    if recomputed:
        src = _recompute(b, sel, sel.outputs[feed.feature], feed.program, state)
    else:
        src = sel.features[feed.feature]
    if not feed.requantize:
        return src
    # In place (dtm_requantize_s8 allows it) on the selector's buffer: the selector
    # has finished.  A recomputed slice may still feed later recomputation, and
    # a feature read twice must not be requantised twice: those get a buffer
    # of their own.
    in_place = not recomputed and src not in state.requantized
    t = g.tensor(feed.tensor)
    dst = src if in_place else b.new_value(f"{feed.program}_rq_{feed.input_name}", t.nbytes)
    state.requantized.add(src)
    call = L.requantize_call(
        t.size,
        feed.from_quant.scale,
        feed.from_quant.zero_point,
        feed.to_quant.scale,
        feed.to_quant.zero_point,
        src,
        f"{feed.program}/requantize_{feed.input_name}",
    )
    call.output = dst
    b.steps.append(Step("call", feed.program, call=call, output=dst, reads=[src], recompute=recomputed))
    return dst


def _recompute(b: _Builder, sel: _Selector, feat_tensor: int, prog: str, state: _FeedState) -> str:
    """Re-run the selector ops that produce ``feat_tensor`` (those not already
    recomputed for this classifier) and return the feature's value."""
    needed = _ancestors(sel.graph, feat_tensor) - state.recomputed
    state.recomputed |= needed
    env = b.run(sel.graph, state.env, f"{prog}_re", only=needed, recompute=True)
    return b.single(env[feat_tensor], sel.graph, feat_tensor, f"{prog}_re_t{feat_tensor}")


def _links(manifest: dict) -> list[dict]:
    return list(manifest.get("links") or [])


def _link_for(links, prog: str, in_name: str) -> dict | None:
    """The manifest link feeding ``prog:in_name`` (exact, or ``classifier_*``)."""
    for exact in (True, False):
        for link in links:
            pat_prog, _, pat_in = str(link.get("to", "")).partition(":")
            if pat_in == in_name and (pat_prog == prog if exact else pat_prog == "classifier_*"):
                return link
    return None


def _lifetimes(s: Schedule) -> None:
    """Number the steps on the composed timeline and set each value's range."""
    sel = s.programs.get("selector")
    start = 0
    layer0 = 0
    if sel is not None:
        li = 0
        for i, st in enumerate(sel.steps):
            st.index = i
            if st.kind in ("call", "copy"):
                st.layer_index, li = li, li + 1
        start = len(sel.steps)
        layer0 = li
    max_layers = layer0
    for name, prog in s.programs.items():
        if name == "selector":
            continue
        li = layer0
        for i, st in enumerate(prog.steps):
            st.index = start + i
            if st.kind in ("call", "copy"):
                st.layer_index, li = li, li + 1
        max_layers = max(max_layers, li)
    s.num_layers = max_layers
    for prog in s.programs.values():
        for st in prog.steps:
            for v in [st.output] if st.output else []:
                val = s.values[v]
                if val.first < 0 or st.index < val.first:
                    val.first = st.index
                val.last = max(val.last, st.index)
            for v in st.reads:
                val = s.values[v]
                val.last = max(val.last, st.index)
                if val.first < 0:  # an input of a sub-model run alone
                    val.first = 0
    for v in s.values.values():
        if v.first < 0:  # produced and never read: still written once
            v.first = v.last = 0
