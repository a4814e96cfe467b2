"""Where one optimizer step spends its time: our step against Google's reference graph, op by op.

Runs each candidate's step (built by bench_peers.py's builders) under the TensorFlow profiler
(tf.profiler.experimental, one trace per candidate), parses the trace's XSpace protobuf and
reports per optimizer step:

* ops executed, and op time grouped by op class (MatMul/BatchMatMul, LayerNorm, GELU/tanh,
  softmax/cross-entropy, dropout/RNG, optimizer update, reductions, gather/scatter,
  transpose/reshape, elementwise, variable reads, other);
* ops per phase (forward, backward, optimizer) by name scope;
* host round trips: calls from Python into the runtime (tf.function calls, eager ops,
  Session.run) and tensor copies between devices or to the host;
* the step's wall time, the time covered by at least one running op (the union of the op
  intervals across threads) and the gap between the two: time the step spends outside any op
  kernel, i.e. framework overhead (dispatch, executor scheduling, function call, Python).

Candidates:

* ours:          bench_peers' bare step (tf.function of loss, gradients and the trainer's optimizer,
                 hvd_pretrain.train.optimizers.AdamWeightDecay).
* ours_clip:     the same step clipping by global norm 1.0 first, as the trainer and Google's step do.
* ours (Keras AdamW): the same step with Keras' AdamW.
* trainer:       bench_peers' trainer step (AccumulatingStep, accumulation 1).
* google:        bench_peers' Google candidate: bert-tensorflow's modeling.py, run_pretraining's heads and
                 AdamWeightDecayOptimizer in a tf.compat.v1 Session.

With XLA on, a compiled step is one op to TensorFlow's profiler. XLA:CPU then also traces each HLO
instruction it runs (XLA_FLAGS --xla_cpu_enable_xprof_traceme, set here: it adds a trace call around
each instruction), and a further table gives their count and time per step by kind: `custom-call`
(oneDNN matmuls, `__onednn$matmul`), `call` (computations XLA splits across threads: element-wise
and reductions), `fusion` (fused loops run on one thread), `copy` (layout changes), `dot` (matmuls
left to XLA's own loops).

  python benchmarks/profile_step.py --sizes=small --xla=off
  python benchmarks/profile_step.py --sizes=base --xla=off,on --candidates=ours
"""

import argparse
import collections
import glob
import os
import re
import shutil
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()

import bench_peers  # noqa: E402
import common  # noqa: E402
from hvd_pretrain.models import preset  # noqa: E402
from hvd_pretrain.tfcompat import tf  # noqa: E402

CLASSES = ("matmul", "layernorm", "gelu/tanh", "softmax/xent", "dropout/rng", "optimizer", "grad clip",
           "reduction", "gather/scatter", "transpose/reshape", "elementwise", "variable read", "other")

MATMUL = re.compile(r"MatMul|Einsum")
SOFTMAX = re.compile(r"Softmax|SoftmaxCrossEntropy")
REDUCTION = {"Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "ArgMin", "L2Loss", "All", "Any", "BiasAddGrad",
             "EuclideanNorm"}
GATHER = re.compile(r"Gather|Scatter|UnsortedSegment|OneHot|DynamicStitch|SparseSegment")
SHAPE = {"Transpose", "_MklTranspose", "Reshape", "ExpandDims", "Squeeze", "ConcatV2", "Concat", "Slice",
         "StridedSlice", "StridedSliceGrad", "Pack", "Unpack", "Tile", "BroadcastTo", "Shape", "ShapeN",
         "Fill", "Range", "ConjugateTranspose", "BroadcastArgs", "BroadcastGradientArgs", "Size", "Rank",
         "ResourceStridedSliceAssign", "Split", "SplitV", "InvertPermutation", "DynamicPartition"}
ELEMENTWISE = {"Add", "AddV2", "Mul", "Sub", "RealDiv", "Div", "DivNoNan", "Maximum", "Minimum", "Sqrt", "Rsqrt",
               "RsqrtGrad", "SqrtGrad", "Square", "SquaredDifference", "Cast", "BiasAdd", "Select", "SelectV2",
               "Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual", "LogicalAnd", "LogicalOr",
               "LogicalNot", "Neg", "Exp", "Log", "Log1p", "Pow", "AddN", "ZerosLike", "OnesLike", "Reciprocal",
               "FloorDiv", "FloorMod", "IsFinite", "_MklAdd", "_MklAddV2", "_MklMul", "_MklSub",
               "_MklSquaredDifference", "_MklMaximum", "_MklSquare", "_MklSqrt", "_MklCast", "_FusedBatchNorm",
               "ClipByValue", "StopGradient", "PreventGradient", "Abs", "Sign", "TruncateDiv", "Relu", "ReluGrad"}
VARIABLE = {"ReadVariableOp", "VarHandleOp", "VariableV2", "Identity", "IdentityN", "_Retval", "_Arg", "NoOp",
            "Const", "Enter", "Exit", "Switch", "Merge", "NextIteration", "Placeholder"}
COPY_TYPES = re.compile(r"^_(Host)?(Send|Recv)$|Memcpy|CopyToDevice|CopyFromDevice|_Host")
# Python -> runtime calls on the host's Python thread (one per eager op / function call / session run).
CALL_EVENTS = re.compile(r"^(TFE_Py_ExecuteCancelable|TFE_Py_FastPathExecute|SessionRun|Session::Run|"
                         r"TF_SessionRun|DirectSession::Run|EagerExecute)$")


def phase(name, tf1):
    """forward / backward / optimizer / glue by name scope.

    TF2 (tape): model ops under pretrainer/, gradients under gradient_tape/ (and root AddN: the tape's
    gradient sums), the optimizer under its name (AdamW/, LAMB/); other root ops are step glue (loss
    normalisation, accumulation, finiteness checks). TF1 (Google): model ops under bert/ and cls/ (losses
    included), gradients under gradients/, every root op belongs to the optimizer step (clipping, schedule,
    update).
    """
    head = name.split("/", 1)[0]
    if head in ("gradient_tape", "gradients") or re.match(r"AddN(_\d+)?$", name):
        return "backward"
    if head in ("pretrainer", "bert", "cls"):
        return "forward"
    if tf1 or re.search(r"(^|/)(AdamW|LAMB|Adam)(_\d+)?/", name):
        return "optimizer"
    return "glue"


def op_class(name, op_type, op_phase):
    lower = name.lower()
    if MATMUL.search(op_type):
        return "matmul"
    if "layer_norm" in lower or "layernorm" in lower:
        return "layernorm"
    if (op_type in ("Erf", "Erfc", "Tanh", "TanhGrad", "Gelu", "GeluGrad") or "gelu" in lower
            or re.search(r"(intermediate|transform/dense)/(Pow|mul|add|Tanh)", name)):
        return "gelu/tanh"
    if SOFTMAX.search(op_type) or "softmax" in lower:
        return "softmax/xent"
    if "Random" in op_type or "dropout" in lower:
        return "dropout/rng"
    if "global_norm" in name or "clip_by" in name:
        return "grad clip"
    if op_phase == "optimizer" and op_type not in VARIABLE:
        return "optimizer"
    if op_type in REDUCTION or op_type.startswith("_MklReduce"):
        return "reduction"
    if GATHER.search(op_type):
        return "gather/scatter"
    if op_type in SHAPE:
        return "transpose/reshape"
    if op_type in ELEMENTWISE or re.search(r"Grad$", op_type):
        return "elementwise"
    if op_type in VARIABLE or "Assign" in op_type:
        return "optimizer" if op_phase == "optimizer" and "Assign" in op_type else "variable read"
    return "other"


def read_space(logdir):
    """The one XSpace trace written under logdir, parsed."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if len(paths) != 1:
        raise RuntimeError("expected one trace under %s, found %d" % (logdir, len(paths)))
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    return space


def parse_trace(space):
    """The op events, Python->runtime calls and copies of a trace (read_space)."""
    ops, calls, copies = [], collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                start = line.timestamp_ns * 1000 + event.offset_ps
                if CALL_EVENTS.match(meta.name):
                    calls[meta.name] += 1
                if COPY_TYPES.search(meta.name) or COPY_TYPES.search(meta.display_name):
                    copies[meta.display_name or meta.name] += 1
                # Op kernels: "<node name>:<op type>" with the op type as display name.
                if meta.display_name and meta.name.endswith(":" + meta.display_name):
                    node = meta.name[:-len(meta.display_name) - 1]
                    ops.append((node, meta.display_name, start, start + event.duration_ps))
    return ops, calls, copies


HLO_EVENT = re.compile(r"^([a-z][a-z-]*)\.\d+")


def parse_hlo(space):
    """XLA:CPU's per-instruction events in a trace (read_space): {HLO kind: [count, duration ps]}.

    Only the events on XLA's executor threads ("host_executor" lines) are counted: those are the
    instructions of the compiled program, one after the other; a `call`'s own work on other threads
    is inside its duration."""
    kinds = collections.defaultdict(lambda: [0, 0])
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("host_executor"):
                continue
            for event in line.events:
                match = HLO_EVENT.match(plane.event_metadata[event.metadata_id].name)
                if match:
                    kinds[match.group(1)][0] += 1
                    kinds[match.group(1)][1] += event.duration_ps
    return kinds


def covered_ps(intervals):
    """Length of the union of [start, end) intervals."""
    total, end = 0, None
    for s, e in sorted(intervals):
        if end is None or s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def profile(fn, steps, logdir, tf1=False):
    """Run fn `steps` times under the profiler; per-step figures from the parsed trace."""
    tf.profiler.experimental.start(logdir)
    walls = []
    try:
        for _ in range(steps):
            start = time.perf_counter()
            fn()
            walls.append(time.perf_counter() - start)
    finally:
        tf.profiler.experimental.stop()
    space = read_space(logdir)
    ops, calls, copies = parse_trace(space)
    hlo = parse_hlo(space)
    by_class = collections.defaultdict(lambda: [0, 0.0])
    by_phase = collections.defaultdict(lambda: [0, 0.0])
    kernels = collections.defaultdict(lambda: [0, 0.0])
    for node, op_type, s, e in ops:
        p = phase(node, tf1)
        c = op_class(node, op_type, p)
        for table, key in ((by_class, c), (by_phase, p), (kernels, op_type)):
            table[key][0] += 1
            table[key][1] += (e - s) / 1e9
    per = 1.0 / steps
    return {
        "steps": steps,
        "wall_ms": 1e3 * sum(walls) * per,
        "op_sum_ms": sum(v[1] for v in by_class.values()) * per,
        "op_busy_ms": covered_ps([(s, e) for _, _, s, e in ops]) / 1e9 * per,
        "ops": len(ops) * per,
        "classes": {k: (v[0] * per, v[1] * per) for k, v in by_class.items()},
        "phases": {k: (v[0] * per, v[1] * per) for k, v in by_phase.items()},
        "kernels": {k: (v[0] * per, v[1] * per) for k, v in kernels.items()},
        "calls": sum(calls.values()) * per,
        "call_kinds": dict(calls),
        "copies": sum(copies.values()) * per,
        "copy_kinds": dict(copies),
        "hlo": {k: (v[0] * per, v[1] / 1e9 * per) for k, v in hlo.items()},
    }


def candidates(cfg, batch, xla, names, google):
    built = {}
    if "google" in names:  # first: Keras layers made before a tf.compat.v1 Graph are invalidated by it
        built["google"] = bench_peers.google_step(cfg, batch, xla, google)
    if "ours" in names:
        built["ours"] = bench_peers.ours_step(cfg, batch, xla, "trainer")
    if "ours_clip" in names:
        built[bench_peers.CLIPPED] = bench_peers.ours_step(cfg, batch, xla, "trainer", clip_norm=1.0)
    if "ours_keras" in names:
        built["ours (Keras AdamW)"] = bench_peers.ours_step(cfg, batch, xla, "keras")
    if "trainer" in names and not xla:
        built["trainer"] = bench_peers.trainer_step(cfg, batch)
    return built


def fmt(x, digits=1):
    return ("%%.%df" % digits) % x


def tables(results):
    """Markdown tables: summary, op classes, phases; results: [(size, xla, name, stats)]."""
    cols = ["%s %s XLA %s" % (name, size, xla) for size, xla, name, _ in results]
    stats = [r[3] for r in results]
    summary = [["step wall time (ms, under the profiler)"] + [fmt(s["wall_ms"]) for s in stats],
               ["step wall time (ms, no profiler, median)"] + [fmt(s["plain_ms"]) for s in stats],
               ["op time summed over threads (ms)"] + [fmt(s["op_sum_ms"]) for s in stats],
               ["time with >= 1 op running (ms)"] + [fmt(s["op_busy_ms"]) for s in stats],
               ["gap: wall - op-busy (ms)"] + [fmt(s["wall_ms"] - s["op_busy_ms"]) for s in stats],
               ["gap share of wall"] + ["%.0f%%" % (100 * (1 - s["op_busy_ms"] / s["wall_ms"])) for s in stats],
               ["ops executed"] + [fmt(s["ops"], 0) for s in stats],
               ["mean op time (us)"] + [fmt(1e3 * s["op_sum_ms"] / max(s["ops"], 1)) for s in stats],
               ["Python->runtime calls"] + [fmt(s["calls"], 0) for s in stats],
               ["device/host copies"] + [fmt(s["copies"], 0) for s in stats]]
    by_class = [[c] + ["%s / %s" % (fmt(s["classes"].get(c, (0, 0))[0], 0), fmt(s["classes"].get(c, (0, 0))[1], 2))
                       for s in stats] for c in CLASSES]
    by_phase = [[p] + ["%s / %s" % (fmt(s["phases"].get(p, (0, 0))[0], 0), fmt(s["phases"].get(p, (0, 0))[1], 2))
                       for s in stats] for p in ("forward", "backward", "optimizer", "glue")]
    return (common.markdown_table(["per optimizer step"] + cols, summary),
            common.markdown_table(["op class: ops / ms"] + cols, by_class),
            common.markdown_table(["phase: ops / ms"] + cols, by_phase))


def kernel_differences(stats, other):
    """Op types whose count per step differs between two candidates: [type, count, ms, other count, other ms]."""
    rows = []
    for kind in sorted(set(stats["kernels"]) | set(other["kernels"])):
        (n, ms), (m, other_ms) = stats["kernels"].get(kind, (0, 0.0)), other["kernels"].get(kind, (0, 0.0))
        if round(n) != round(m):
            rows.append([kind, fmt(n, 0), fmt(ms, 2), fmt(m, 0), fmt(other_ms, 2)])
    return sorted(rows, key=lambda r: -abs(float(r[2]) - float(r[4])))


def top_kernels(stats, n=12):
    rows = sorted(stats["kernels"].items(), key=lambda kv: -kv[1][1])[:n]
    return ", ".join("%s %s x %.2f ms" % (k, fmt(v[0], 0), v[1]) for k, v in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small")
    common.add_batch_shape(parser)
    parser.add_argument("--xla", default="off")
    parser.add_argument("--candidates", default="ours,ours_keras,trainer,google")
    parser.add_argument("--steps", type=int, default=5, help="profiled optimizer steps per candidate")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--logdir", default=None, help="keep the traces here (default: a temporary directory)")
    parser.add_argument("--no_write", action="store_true")
    parser.add_argument("--title", default="Step profile: ours vs Google's reference",
                        help="the BENCHMARKS.md section title")
    args = parser.parse_args()
    names = args.candidates.split(",")
    google = bench_peers.import_google() if "google" in names else None
    logroot = args.logdir or tempfile.mkdtemp(prefix="profile_step_")
    results = []
    for size in args.sizes.split(","):
        cfg = preset(size)
        batch = bench_peers.numpy_batch(cfg, args)
        for xla in [x == "on" for x in args.xla.split(",")]:
            built = candidates(cfg, batch, xla, names, google)
            plain = common.alternate(built, args.steps, warmup=args.warmup)
            for name, fn in built.items():
                logdir = os.path.join(logroot, "%s-%s-%s" % (size, "xla" if xla else "noxla",
                                                            re.sub(r"\W+", "_", name)))
                stats = profile(fn, args.steps, logdir, tf1=name == "google")
                stats["plain_ms"] = 1e3 * common.median(plain[name])
                results.append((size, "on" if xla else "off", name, stats))
                print("%s %s xla=%s: %.0f ops, wall %.1f ms, busy %.1f ms, calls %s, copies %s; top: %s" % (
                    name, size, xla, stats["ops"], stats["wall_ms"], stats["op_busy_ms"],
                    stats["call_kinds"], stats["copy_kinds"], top_kernels(stats)), flush=True)
    if not args.logdir:
        shutil.rmtree(logroot, ignore_errors=True)
    summary, by_class, by_phase = tables(results)
    kernels = "\n".join("- %s %s XLA %s: %s" % (name, size, xla, top_kernels(s)) for size, xla, name, s in results)
    notes = ("BERT %s, batch %d x seq %d, %d masked positions, MLM+NSP, fp32, one optimizer step per call; "
             "%d profiled steps per candidate after %d warm-up steps (tf.profiler.experimental trace, "
             "parsed from its XSpace protobuf). Op time is kernel time per op event; `ops / ms` are per "
             "optimizer step. Load average at the start and end: %s."
             % (args.sizes, args.batch, args.seq_len, args.predictions, args.steps, args.warmup,
                START_LOAD + " / " + load()))
    command = "python benchmarks/profile_step.py --sizes=%s --xla=%s --candidates=%s --steps=%d" % (
        args.sizes, args.xla, args.candidates, args.steps)
    text = "\n\n".join([summary, by_class, by_phase, "Heaviest kernels (count x ms per step):\n\n" + kernels])
    compiled = [(size, xla, name, s) for size, xla, name, s in results if s["hlo"]]
    if compiled:
        kinds = sorted({k for *_, s in compiled for k in s["hlo"]},
                       key=lambda k: -max(s["hlo"].get(k, (0, 0))[1] for *_, s in compiled))
        rows = [[k] + ["%s / %s" % (fmt(s["hlo"].get(k, (0, 0))[0], 0), fmt(s["hlo"].get(k, (0, 0))[1], 2))
                       for *_, s in compiled] for k in kinds]
        rows.append(["all instructions (ms)"] + [fmt(sum(v[1] for v in s["hlo"].values()), 1) for *_, s in compiled])
        text += "\n\nXLA instructions run by the compiled steps (count / ms per step):\n\n" + common.markdown_table(
            ["HLO kind"] + ["%s %s XLA %s" % (name, size, xla) for size, xla, name, _ in compiled], rows)
    by_name = {(size, xla, name): s for size, xla, name, s in results}
    for size, xla, name, stats in results:
        clipped = by_name.get((size, xla, bench_peers.CLIPPED))
        if name == "trainer" and clipped is not None:
            text += ("\n\nOp types whose count per step differs between the trainer's step and the clipped bare "
                     "step (%s, XLA %s):\n\n" % (size, xla)) + common.markdown_table(
                ["op type", "trainer: ops", "trainer: ms", "clipped bare: ops", "clipped bare: ms"],
                kernel_differences(stats, clipped))
    if args.no_write:
        print(notes + "\n\n" + text)
    else:
        common.publish(args.title, command, notes, text, common.machine_line(tf))


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


START_LOAD = load()

if __name__ == "__main__":
    main()
