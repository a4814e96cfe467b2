"""The run directory: one place every stage reads and writes.

Layout (see README, "The run directory")::

    runs/<name>/
      plan.json          resolved config and batch/step plan
      vocab/             spm.model + spm.vocab (or vocab.txt)
      data/              TFRecord shards + manifest.json
      checkpoints/       rank 0 only, atomic, keep-N
      metrics.jsonl      rank 0: one JSON object per logging window
      ranks/<r>.jsonl    per-rank step and data-wait times
      tb/                TensorBoard events
      job.json           written by the supervisor
      logs/              supervisor and trainer logs
      finetune/<task>.json   hvd-finetune's downstream probe results

This module owns the paths and the file formats. It imports nothing heavy
(no TensorFlow, no Horovod) so that the supervisor and the monitor can use it.
"""

import json
import os
import tempfile
from dataclasses import dataclass


# Every file and folder name of the layout above; other modules use these, never the strings.
PLAN, VOCAB, DATA, CHECKPOINTS = "plan.json", "vocab", "data", "checkpoints"
METRICS, RANKS, TENSORBOARD = "metrics.jsonl", "ranks", "tb"
JOB, LOGS, STOP_REQUEST = "job.json", "logs", "stop_request.json"
TRAIN_LOG, SUPERVISOR_LOG = "train.log", "supervisor.log"  # in logs/
FINETUNE = "finetune"  # hvd-finetune's results, one <task>.json each
RANDOM_INIT = "random init"  # in finetune/<task>.json: the source label of the --random_init row begins so
MANIFEST = "manifest.json"  # in a data directory
BEST = "best"  # in checkpoints/: the best checkpoint by an eval metric (--keep_best), outside the rotation
EVAL = "eval"  # evaluation results (hvd-pretrain --eval_only)
# Any of these marks a directory as a run directory.
RUN_MARKERS = (METRICS, JOB, PLAN, RANKS, CHECKPOINTS)


@dataclass(frozen=True)
class RunDir:
    root: str

    @property
    def name(self):
        return os.path.basename(os.path.normpath(self.root))

    @property
    def plan(self):
        return os.path.join(self.root, PLAN)

    @property
    def vocab_dir(self):
        return os.path.join(self.root, VOCAB)

    @property
    def data_dir(self):
        return os.path.join(self.root, DATA)

    @property
    def checkpoints(self):
        return os.path.join(self.root, CHECKPOINTS)

    @property
    def best_checkpoints(self):
        return os.path.join(self.root, CHECKPOINTS, BEST)

    @property
    def eval_results(self):
        return os.path.join(self.root, EVAL)

    @property
    def metrics(self):
        return os.path.join(self.root, METRICS)

    @property
    def ranks_dir(self):
        return os.path.join(self.root, RANKS)

    def rank_log(self, rank):
        return os.path.join(self.ranks_dir, "%d.jsonl" % int(rank))

    def batch_log(self, rank):
        """--record_batch_digests: one record per optimizer step with its micro-batches' digests."""
        return os.path.join(self.ranks_dir, "%d.batches.jsonl" % int(rank))

    @property
    def tensorboard(self):
        return os.path.join(self.root, TENSORBOARD)

    @property
    def job(self):
        return os.path.join(self.root, JOB)

    @property
    def logs(self):
        return os.path.join(self.root, LOGS)

    @property
    def stop_request(self):
        return os.path.join(self.root, STOP_REQUEST)

    def finetune_result(self, task):
        return os.path.join(self.root, FINETUNE, "%s.json" % task)

    def log(self, which=TRAIN_LOG):
        return os.path.join(self.root, LOGS, which)

    def ensure(self):
        for path in (self.root, self.checkpoints, self.ranks_dir, self.logs):
            os.makedirs(path, exist_ok=True)
        return self


def write_text_atomic(path, text, encoding="utf-8"):
    """write_bytes_atomic of `text` encoded."""
    write_bytes_atomic(path, text.encode(encoding))


def write_bytes_atomic(path, data):
    """Write a file so that readers see either the old file or the new one, never half.

    The new file is read back before it replaces the old one; OSError when it differs
    (a full disk or a failing device), and then the old file is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp, "rb") as f:
            if f.read() != data:
                raise OSError("%s: the file read back differs from what was written; %s is unchanged"
                              % (tmp, path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path, default=None):
    """Read a JSON file; a missing or half-written file gives `default`."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def append_jsonl(path, obj):
    """Append one JSON object as one line (a single write, so lines never interleave)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    line = json.dumps(obj, sort_keys=True) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def parse_jsonl_lines(data):
    """(records, bad_lines) from bytes holding complete lines.

    Fast path: the whole block as one JSON array in a single call; any bad line (or a line
    holding more than one value) falls back to line by line. A line that is not a JSON
    object counts as bad.
    """
    lines = [raw for raw in data.splitlines() if raw.strip()]
    try:
        values = json.loads(b"[" + b",".join(lines) + b"]")
        if len(values) == len(lines) and all(type(v) is dict for v in values):
            return values, 0
    except ValueError:
        pass
    records, bad = [], 0
    for raw in lines:
        try:
            obj = json.loads(raw)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict):
            records.append(obj)
        else:
            bad += 1
    return records, bad


def read_jsonl(path, offset=0, max_bytes=None):
    """Read complete JSON lines from byte `offset`, at most about `max_bytes` of them (None: all).

    Returns (records, new_offset, bad_lines). A trailing line without a newline is a write in
    progress: it is left for the next call. A line longer than `max_bytes` is read whole.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read() if max_bytes is None else f.read(max_bytes)
            end = data.rfind(b"\n")
            while end < 0 and max_bytes is not None:
                more = f.read(max_bytes)
                if not more:
                    break
                found = more.find(b"\n")
                end = len(data) + found if found >= 0 else -1
                data += more
    except OSError:
        return [], offset, 0
    if end < 0:
        return [], offset, 0
    records, bad = parse_jsonl_lines(data[: end + 1])
    return records, offset + end + 1, bad


def tail_jsonl(path, max_bytes=65536):
    """The last complete record of a JSONL file, reading at most `max_bytes` from its end."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    start = max(0, size - max_bytes)
    # A fragment at the cut is not a JSON object, so read_jsonl counts it as bad.
    records, _, _ = read_jsonl(path, start)
    return records[-1] if records else None
