"""GPU acceptance: does hvd-pretrain work on this GPU node, and how fast is it against the
planner and NVIDIA's published numbers? One command, under 10 minutes on one GPU.

  python benchmarks/gpu_acceptance.py                 # versions, smoke runs, throughput table
  python benchmarks/gpu_acceptance.py --skip_throughput --no_write

1. Versions: TensorFlow, CUDA and cuDNN it was built with (tf.sysconfig.get_build_info()),
   Horovod and its build (horovodrun --check-build, nccl_built()), the driver and the GPUs.
2. Smoke runs of hvd-pretrain (tiny BERT, embedded corpus): one GPU with fp16 + XLA, all GPUs
   under horovodrun with fp16 + XLA, and one GPU with bf16 + XLA on compute capability >= 8.0.
3. Throughput on one GPU: BERT-base and BERT-large at sequence length 128 and 512, fp16 + XLA,
   with NVIDIA's per-GPU batch sizes (hvd_pretrain/plan/published.py: NVIDIA DeepLearningExamples
   TensorFlow2 BERT README, BERT-large LAMB pre-training rows; lowered to what the planner says
   fits when this GPU has less memory). NVIDIA publishes no BERT-base pre-training row; BERT-base
   runs with the BERT-large batch. Sequences/s come from the run's metrics.jsonl (the last
   logging window; the first holds the XLA compilation); MFU = sequences/s x model FLOPs per
   sequence (hvd_pretrain/models/flops.py) / the GPU's dense fp16 peak (hvd_pretrain/plan/hardware.py).
   Beside each: hvd-plan's prediction for the same run and NVIDIA's row for this GPU generation.

Every run is a subprocess with a timeout. Without an NVIDIA GPU the script says so in one line
and exits 0. The table is appended to BENCHMARKS.md unless --no_write.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import common  # noqa: F401  (puts the repository on sys.path)
from hvd_pretrain import nvidia  # noqa: E402
from hvd_pretrain.models import flops  # noqa: E402
from hvd_pretrain.models.config import preset  # noqa: E402
from hvd_pretrain.plan import memory, published  # noqa: E402
from hvd_pretrain.plan.estimate import predict  # noqa: E402
from hvd_pretrain.plan.hardware import GPUS  # noqa: E402
from hvd_pretrain.rundir import RunDir  # noqa: E402

PREDICTIONS = {128: 20, 512: 80}  # NVIDIA's recipe: max_predictions_per_seq 20 at 128, 80 at 512


def gpu_preset(gpu):
    """The planner's GPU preset for an nvidia-smi row, or None."""
    name, mib = gpu.name.upper(), gpu.memory_mib
    if "H100" in name:
        return "H100"
    if "A100" in name:
        return "A100-80G" if mib > 50 * 1024 else "A100-40G"
    if "V100" in name:
        return "V100-32G" if mib > 20 * 1024 else "V100-16G"
    return None


def nvidia_batch(gpu_name, seq_len):
    """NVIDIA's published per-GPU fp16 batch for this GPU generation (A100 rows for H100), or None."""
    family = "V100" if gpu_name and gpu_name.startswith("V100") else "A100" if gpu_name else None
    rows = [m for m in published.CALIBRATION if m.gpu.startswith(family or "?") and m.precision == "fp16"
            and m.seq_len == seq_len]
    return rows[0] if rows else None


def choose_batch(model, seq_len, gpu, preset_name):
    """(per-GPU batch, where it comes from, NVIDIA's row or None)."""
    row = nvidia_batch(preset_name, seq_len)
    config = preset(model)
    fits = memory.max_batch_that_fits(config, seq_len, "fp16", 1, PREDICTIONS[seq_len], gpu.memory_mib * 1024 ** 2)
    if row is None:
        return max(fits, 1), "largest that fits (hvd-plan)", None
    if row.per_gpu_batch <= fits:
        return row.per_gpu_batch, "NVIDIA's", row
    return max(fits, 1), "NVIDIA's %d does not fit: largest that fits" % row.per_gpu_batch, row


def run(cmd, timeout, log_path, env=None):
    """(returncode or 'timeout', seconds) of cmd in its own process group; output to log_path."""
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = "timeout"
        finally:
            try:
                os.killpg(proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    return code, time.time() - start


def tail(path, n=1):
    with open(path, errors="replace") as f:
        lines = [line.rstrip() for line in f if line.strip()]
    return " | ".join(lines[-n:])[-300:]


def last_window(run_dir):
    """The last metrics.jsonl record with a throughput, or None."""
    path = RunDir(run_dir).metrics
    if not os.path.exists(path):
        return None
    records = [json.loads(line) for line in open(path) if line.strip()]
    records = [r for r in records if "examples_per_sec" in r]
    return records[-1] if records else None


def versions(gpus, timeout):
    from hvd_pretrain.supervisor.doctor import parse_check_build
    from hvd_pretrain.supervisor.gpu import nccl_version, probe_python
    facts = probe_python(timeout=timeout)
    lines = ["GPUs: " + "; ".join("%d: %s, %d MiB, compute capability %s" % (
        g.index, g.name, g.memory_mib, g.compute_capability or "?") for g in gpus),
        "driver %s" % gpus[0].driver]
    if "error" in facts or "tf_error" in facts:
        lines.append("TensorFlow: %s" % (facts.get("error") or facts.get("tf_error")))
    else:
        lines.append("TensorFlow %s, built with CUDA %s, cuDNN %s; TensorFlow sees %s GPUs" % (
            facts["tf_version"], facts.get("cuda_version"), facts.get("cudnn_version"), facts.get("tf_gpus")))
    nccl = facts.get("nccl")
    lines.append("Horovod NCCL: %s" % (nccl_version(nccl) if nccl else facts.get("horovod_error", "not built")))
    code, text = nvidia.run_program(["horovodrun", "--check-build"], timeout)
    build = parse_check_build(text) if code == 0 else None
    lines.append("Horovod build: " + ("; ".join("%s: %s" % (k, ", ".join(v) or "none") for k, v in build.items())
                                      if build else "horovodrun --check-build failed: %s" % text.strip()[-200:]))
    return lines, facts


def smoke_runs(args, gpus, work):
    """[(name, ok, detail)] for the 1-GPU and all-GPU runs; the first run's directory holds the vocab."""
    base = ["--num_train_steps=%d" % args.smoke_steps, "--log_every=%d" % max(args.smoke_steps // 3, 1),
            "--save_checkpoints_steps=1000", "--xla"]
    cc = max((float(g.compute_capability or 0) for g in gpus), default=0)
    runs = [("1 GPU, fp16 + XLA", ["hvd-pretrain"], "fp16"),
            ("all %d GPUs, fp16 + XLA" % len(gpus), ["horovodrun", "-np", str(len(gpus)), "hvd-pretrain"], "fp16")]
    if cc >= 8.0:
        runs.append(("1 GPU, bf16 + XLA", ["hvd-pretrain"], "bf16"))
    results = []
    for i, (name, launcher, precision) in enumerate(runs):
        run_dir = os.path.join(work, "smoke%d" % i)
        cmd = launcher + ["--run_dir=" + run_dir, "--precision=" + precision] + base
        if i:
            cmd += ["--vocab_dir=" + RunDir(os.path.join(work, "smoke0")).vocab_dir]
        if len(gpus) == 1 and launcher[0] == "horovodrun":
            results.append((name, None, "skipped: one GPU"))
            continue
        code, seconds = run(cmd, args.smoke_timeout, run_dir + ".log")
        record = last_window(run_dir)
        ok = code == 0 and record is not None
        detail = ("%.0f s, last window %.1f examples/s, loss %.3f" % (seconds, record["examples_per_sec"],
                                                                       record["loss"]) if ok else
                  "exit %s after %.0f s: %s" % (code, seconds, tail(run_dir + ".log")))
        results.append((name, ok, detail))
        print("%-22s %s  %s" % (name, "OK  " if ok else "FAIL", detail), flush=True)
    return results


def throughput_rows(args, gpu, work):
    preset_name = gpu_preset(gpu)
    peak = GPUS[preset_name].peak["fp16"] if preset_name else (args.peak_tflops * 1e12 or None)
    vocab = RunDir(os.path.join(work, "smoke0")).vocab_dir
    data_for = {}
    rows = []
    for model in args.models.split(","):
        for seq_len in (int(s) for s in args.seq_lens.split(",")):
            config = preset(model)
            preds = PREDICTIONS[seq_len]
            batch, source, row = choose_batch(model, seq_len, gpu, preset_name)
            if args.batch:
                batch, source = args.batch, "--batch"
            run_dir = os.path.join(work, "%s-%d" % (model, seq_len))
            cmd = ["hvd-pretrain", "--run_dir=" + run_dir, "--preset=" + model, "--max_seq_length=%d" % seq_len,
                   "--max_predictions_per_seq=%d" % preds, "--micro_batch_size=%d" % batch,
                   "--accum_steps=%d" % args.accum_steps, "--precision=fp16", "--xla",
                   "--num_train_steps=%d" % args.steps, "--log_every=%d" % max(args.steps // 3, 1),
                   "--save_checkpoints_steps=100000", "--vocab_dir=" + vocab]
            if preset_name:
                cmd.append("--gpu_type=" + preset_name)
            if seq_len in data_for:
                cmd.append("--data_dir=" + data_for[seq_len])
            code, seconds = run(cmd, args.run_timeout, run_dir + ".log")
            record = last_window(run_dir)
            measured = record["examples_per_sec"] if code == 0 and record else None
            if measured is not None:
                data_for.setdefault(seq_len, RunDir(run_dir).data_dir)
            per_seq = flops.training_flops_per_sequence(config, seq_len, preds)
            plan = (predict(config, seq_len, batch, args.accum_steps, "fp16", preset_name, 1, 1)
                    if preset_name else None)
            nv = row if model == "large" else None
            rows.append([
                "BERT-%s" % model, seq_len, "%d (%s)" % (batch, source),
                "%.1f" % measured if measured else "failed: exit %s (%s)" % (code, os.path.basename(run_dir) + ".log"),
                "%.1f%%" % (100 * measured * per_seq / peak) if measured and peak else "n/a",
                "%.1f" % plan["sequences_per_sec"] if plan else "n/a",
                "%.1f%%" % (100 * plan["mfu"]) if plan else "n/a",
                "%.1f (%s, batch %d, accum %d)" % (nv.sequences_per_sec, nv.gpu, nv.per_gpu_batch, nv.accum_steps)
                if nv else "no published row"])
            print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="base,large")
    parser.add_argument("--seq_lens", default="128,512")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per throughput run")
    parser.add_argument("--batch", type=int, default=0, help="per-GPU batch instead of NVIDIA's (0)")
    parser.add_argument("--accum_steps", type=int, default=4, help="micro-batches per optimizer step")
    parser.add_argument("--smoke_steps", type=int, default=30)
    parser.add_argument("--smoke_timeout", type=float, default=240, help="seconds per smoke run")
    parser.add_argument("--run_timeout", type=float, default=150, help="seconds per throughput run")
    parser.add_argument("--peak_tflops", type=float, default=0.0, help="dense fp16 peak for a GPU without a preset")
    parser.add_argument("--skip_throughput", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the run directories (printed)")
    parser.add_argument("--no_write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args = parser.parse_args()

    gpus, problem = nvidia.query_gpus()
    if problem:
        print("nvidia-smi fails (%s): fix the NVIDIA driver first; hvd-job doctor says more" % problem)
        return 1
    if not gpus:
        print("no NVIDIA GPU on this machine (nvidia-smi is missing or lists none): the GPU acceptance run "
              "needs a GPU node; nothing was run")
        return 0
    lines, facts = versions(gpus, timeout=240)
    print("\n".join(lines), flush=True)
    work = tempfile.mkdtemp(prefix="gpu-acceptance-")
    try:
        smoke = smoke_runs(args, gpus, work)
        table = common.markdown_table(["smoke run", "result", "detail"], [
            [name, {True: "OK", False: "FAIL", None: "skipped"}[ok], detail] for name, ok, detail in smoke])
        if not args.skip_throughput and smoke[0][1]:
            table += "\n\n" + common.markdown_table(
                ["model", "seq", "batch/GPU", "measured seq/s", "measured MFU", "hvd-plan seq/s", "hvd-plan MFU",
                 "NVIDIA seq/s (1 GPU)"], throughput_rows(args, gpus[0], work))
        notes = ("One GPU (%s); fp16 + XLA, accum %d, %d optimizer steps per run, last logging window; embedded "
                 "corpus with its 8000-piece vocabulary (NVIDIA: 30522 WordPiece, LAMB, accum 256 to 3072). "
                 "Versions: %s." % (gpus[0].name, args.accum_steps, args.steps, "; ".join(lines[1:])))
        command = "python benchmarks/gpu_acceptance.py"
        if args.no_write:
            print("\n" + notes + "\n\n" + table)
        else:
            common.publish("GPU acceptance on %s" % gpus[0].name, command, notes, table,
                           "%d x %s" % (len(gpus), gpus[0].name))
        failed = [name for name, ok, _ in smoke if ok is False]
        if failed:
            print("smoke runs failed: %s (logs in %s)" % (", ".join(failed), work))
            args.keep = True
        return 1 if failed else 0
    finally:
        if args.keep:
            print("run directories kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
