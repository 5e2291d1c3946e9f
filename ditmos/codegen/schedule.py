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
  conv reading ``[own ; selector]`` features is one multi-part ``conv1d_s8``
  call reading each part from its own buffer into one int32 accumulator.
  The selector features a classifier needs are the only values that outlive
  the selector.  With ``recompute`` the classifier re-runs the selector's
  prefix that produces a shared feature map right before using it, so that
  feature map need not be kept alive across the whole selector.

The caller's input window is read in place (never copied into the arena).
Reshape ops are aliases.  A shared feature map whose classifier-side
quantisation differs from the selector's (manifest link ``requantize``) is
requantised in place (``requantize_s8`` supports output == input) before
the classifier reads it: only one classifier runs per inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ditmos.errors import DitmosError

from ditmos.codegen import lowering as L
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
    logits) or ``result`` (read a program's outputs)."""

    kind: str
    program: str
    call: L.Call | None = None
    parts: list[tuple[str, int]] = field(default_factory=list)  # copy: (value, channels)
    rows: int = 0
    output: str = ""
    reads: list[str] = field(default_factory=list)
    index: int = -1         # position on the composed timeline
    layer_index: int = -1   # profiling index (calls and copies only)
    recompute: bool = False


@dataclass
class Program:
    name: str               # selector / classifier_<k>
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
        return [Buffer(v.name, v.size, v.first, v.last, v.group)
                for v in self.values.values() if v.name != INPUT]


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
        self.steps.append(Step("copy", self.program, parts=list(ref), output=out,
                               rows=int(t.shape[0]) if len(t.shape) == 2 else 1,
                               reads=[p[0] for p in ref]))
        return out

    def run(self, graph: Graph, env: dict, prefix: str, only: set | None = None,
            recompute: bool = False) -> dict:
        """Emit steps for ``graph``'s ops (or the subset ``only``)."""
        T = graph.tensors
        for n, op in enumerate(graph.ops):
            if only is not None and n not in only:
                continue
            tag = f"{prefix}_t{op.outputs[0]}"
            for i in op.inputs:
                if isinstance(env.get(i), _Lazy):
                    env[i] = env[i].make()
            if op.kind == "reshape":
                ref = env[op.inputs[0]]
                y = T[op.outputs[0]]
                if not isinstance(ref, str):
                    chans = sum(c for _, c in ref)
                    if len(y.shape) != 2 or y.shape[-1] != chans:
                        ref = self.single(ref, graph, op.inputs[0], tag + "_in")
                env[op.outputs[0]] = ref
                continue
            if op.kind == "concat":
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
            if op.kind == "conv1d":
                ref = env[op.inputs[0]]
                if isinstance(ref, str):
                    parts = [(ref, x.shape[-1])]
                elif len(ref) > 4:
                    parts = [(self.single(ref, graph, op.inputs[0], tag + "_in"), x.shape[-1])]
                else:
                    parts = ref
                out = self.new_value(tag, y.nbytes)
                call = L.lower_conv(graph, op, [(v, c, int(x.zero_point)) for v, c in parts])
            else:
                srcs = []
                for j, i in enumerate(op.inputs):
                    env[i] = self.single(env[i], graph, i, f"{tag}_in{j}")  # build once
                    srcs.append(env[i])
                out = self.new_value(tag, y.nbytes)
                if op.kind == "dwconv1d":
                    call = L.lower_dwconv(graph, op, srcs[0])
                elif op.kind == "fc":
                    call = L.lower_fc(graph, op, srcs[0])
                elif op.kind in ("maxpool", "avgpool"):
                    call = L.lower_pool(graph, op, srcs[0])
                elif op.kind == "mean":
                    call = L.lower_mean(graph, op, srcs[0])
                elif op.kind == "add":
                    call = L.lower_add(graph, op, srcs)
                elif op.kind == "quantize":
                    call = L.lower_quantize(graph, op, srcs[0])
                elif op.kind == "softmax":
                    call = L.lower_softmax(graph, op, srcs[0])
                elif op.kind == "argmax":
                    call = L.lower_argmax(graph, op, srcs[0])
                else:  # pragma: no cover - ir.py rejects unknown ops
                    raise DitmosError(f"no lowering for op kind {op.kind}")
            call.output = out
            self.steps.append(Step("call", self.program, call=call, output=out,
                                   reads=list(call.inputs), recompute=recompute))
            env[op.outputs[0]] = out
        return env


def _io_by_name(manifest_sub: dict, graph: Graph, key: str) -> dict[str, int]:
    """Manifest input/output name -> tensor index in ``graph``."""
    lst = graph.inputs if key == "inputs" else graph.outputs
    res = {}
    for row in manifest_sub[key]:
        pos = int(row["index"])
        if pos >= len(lst):
            raise DitmosError(f"manifest {key} '{row['name']}' has index {pos} but "
                              f"{graph.path} has {len(lst)} {key}")
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


def build(manifest: dict, graphs: dict[str, Graph], strategy: str = "slicing",
          recompute: tuple[str, ...] = (), alignment: int = 8,
          only: str | None = None) -> Schedule:
    """Build the composed schedule (or, with ``only``, one sub-model alone)
    and its memory plan."""
    if strategy not in STRATEGIES:
        raise DitmosError(f"unknown memory strategy {strategy!r}; choose one of "
                          f"{', '.join(STRATEGIES)}")
    if recompute and strategy != "slicing":
        raise DitmosError("recomputing selector slices needs the 'slicing' strategy")
    slicing = strategy == "slicing"
    K = int(manifest["K"])
    subs = manifest["submodels"]
    values: dict[str, Value] = {INPUT: Value(INPUT, 0, None)}
    programs: dict[str, Program] = {}
    links = _links(manifest)

    sel = graphs["selector"]
    sel_in = _io_by_name(subs["selector"], sel, "inputs")
    sel_out = _io_by_name(subs["selector"], sel, "outputs")
    if set(sel_in) != {"window"} or "route" not in sel_out:
        raise DitmosError("the selector must have the input 'window' and the output "
                          f"'route' (manifest has {sorted(sel_in)} -> {sorted(sel_out)})")
    sel_feats: dict[str, str] = {}
    if only in (None, "selector"):
        b = _Builder("selector", None, slicing, values)
        env = b.run(sel, {sel_in["window"]: INPUT}, "selector")
        outs = {name: b.single(env[t], sel, t, f"selector_out_{name}")
                for name, t in sel_out.items()}
        sel_feats = {n: v for n, v in outs.items() if n != "route"}
        # Run alone, every output is a result that must survive to the end;
        # composed, the features live until the classifier reads them.
        reads = list(outs.values()) if only == "selector" else [outs["route"]]
        b.steps.append(Step("route", "selector", reads=reads))
        programs["selector"] = Program("selector", b.steps, outs)

    for k in range(K):
        name = f"classifier_{k}"
        if only not in (None, name):
            continue
        g = graphs[name]
        c_in = _io_by_name(subs[name], g, "inputs")
        c_out = _io_by_name(subs[name], g, "outputs")
        if "window" not in c_in or "logits" not in c_out:
            raise DitmosError(f"{name} must have the input 'window' and the output "
                              f"'logits' (manifest has {sorted(c_in)} -> {sorted(c_out)})")
        b = _Builder(name, name if only is None else None, slicing, values)
        env = {c_in["window"]: INPUT}
        win_link = _link_for(links, name, "window")
        if win_link and win_link.get("requantize"):
            # the classifier quantises its window differently from the selector
            rq = b.new_value(f"{name}_window_rq", g.tensor(c_in["window"]).nbytes)
            fq, tq = win_link["from_quant"], win_link["to_quant"]
            call = L.requantize_call(g.tensor(c_in["window"]).size, fq["scale"],
                                     fq["zero_point"], tq["scale"], tq["zero_point"], INPUT,
                                     f"{name}/requantize_window")
            call.output = rq
            b.steps.append(Step("call", name, call=call, output=rq, reads=[INPUT]))
            env[c_in["window"]] = rq
        re_state = {"env": {sel_in["window"]: INPUT}, "done": set()}
        requantized: set[str] = set()  # selector buffers already requantised in place
        for in_name, t in c_in.items():
            if in_name == "window":
                continue
            link = _link_for(links, name, in_name)
            frm = str(link.get("from", "")) if link else ""
            if frm.startswith("selector:"):
                feat = frm.split(":", 1)[1]
            else:
                feat = in_name[len("sel_"):] if in_name.startswith("sel_") else None
            if feat is None or feat not in sel_out:
                raise DitmosError(f"{name} input '{in_name}' does not name a selector "
                                  f"output (expected a link from 'selector:<feature>' or "
                                  f"the name sel_<feature>)")
            if only is not None:  # run alone: the feature is an input buffer
                env[t] = b.new_value(f"{name}_in_{in_name}", g.tensor(t).nbytes)
                continue
            sel_row = next(o for o in subs["selector"]["outputs"] if o["name"] == feat)
            row = next(i for i in subs[name]["inputs"] if i["name"] == in_name)
            frm_q = (link or {}).get("from_quant") or sel_row
            to_q = (link or {}).get("to_quant") or row
            requant = bool(link["requantize"]) if link and "requantize" in link else (
                (np.float32(frm_q["scale"]), int(frm_q["zero_point"]))
                != (np.float32(to_q["scale"]), int(to_q["zero_point"])))

            def source(b=b, feat=feat, t=t, in_name=in_name, requant=requant,
                       frm_q=frm_q, to_q=to_q, name=name, g=g, re_state=re_state,
                       requantized=requantized):
                if feat in recompute:
                    src = _recompute(b, sel, sel_in, sel_out[feat], name, re_state)
                else:
                    src = sel_feats[feat]
                if not requant:
                    return src
                # In place (requantize_s8 allows it) on the selector's buffer: the
                # selector has finished.  A recomputed slice may still feed later
                # recomputation, and a feature read twice must not be requantised
                # twice: those get a buffer of their own.
                in_place = feat not in recompute and src not in requantized
                dst = src if in_place else b.new_value(f"{name}_rq_{in_name}",
                                                       g.tensor(t).nbytes)
                requantized.add(src)
                call = L.requantize_call(g.tensor(t).size, frm_q["scale"],
                                         frm_q["zero_point"], to_q["scale"],
                                         to_q["zero_point"], src,
                                         f"{name}/requantize_{in_name}")
                call.output = dst
                b.steps.append(Step("call", name, call=call, output=dst, reads=[src],
                                    recompute=feat in recompute))
                return dst

            env[t] = _Lazy(source) if feat in recompute else source()
        env = b.run(g, env, name)
        outs = {n: b.single(env[t], g, t, f"{name}_out_{n}") for n, t in c_out.items()}
        b.steps.append(Step("result", name, reads=[outs["logits"]]))
        programs[name] = Program(name, b.steps, outs)

    sched = Schedule(strategy, programs, values, 0, list(recompute))
    _lifetimes(sched)
    sched.plan = place(sched.buffers(), "none" if strategy == "none" else "greedy",
                       alignment)
    sched.plan.strategy = strategy
    sched.plan.check()
    return sched


def _recompute(b: _Builder, sel: Graph, sel_in: dict, feat_tensor: int, prog: str,
               state: dict) -> str:
    """Re-run the selector ops that produce ``feat_tensor`` (those not already
    recomputed for this classifier) and return the feature's value."""
    needed = _ancestors(sel, feat_tensor) - state["done"]
    state["done"] |= needed
    env = b.run(sel, state["env"], f"{prog}_re", only=needed, recompute=True)
    return b.single(env[feat_tensor], sel, feat_tensor, f"{prog}_re_t{feat_tensor}")


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
