"""`hvd-monitor top`: a refreshing terminal table of all runs, for SSH users."""

import shutil
import sys
import time

from hvd_pretrain.numbered import numbered_key
from hvd_pretrain.telemetry import status

COLUMNS = (
    # header, width, function(summary) -> str, right-aligned
    ("RUN", 24, lambda s: s["name"], False),
    ("STATE", 10, lambda s: s["state"], False),
    ("RST", 3, lambda s: "-" if s["restarts"] is None else str(s["restarts"]), True),
    ("STEP", 13, lambda s: "-" if s["step"] is None else
        ("%d/%d" % (s["step"], s["num_train_steps"]) if s["num_train_steps"] else "%d" % s["step"]), True),
    ("PROG", 6, lambda s: "-" if s["progress"] is None else "%.1f%%" % s["progress"], True),
    ("STEP/S", 7, lambda s: status.fmt_num(s["global_step_per_sec"]), True),
    ("EX/S", 7, lambda s: status.fmt_num(s["examples_per_sec"]), True),
    ("TOK/S", 7, lambda s: status.fmt_num(s["tokens_per_sec"]), True),
    ("MFU", 6, lambda s: "-" if s["mfu"] is None else
        "%.1f%%" % (s["mfu"] * 100 if s["mfu"] <= 1.5 else s["mfu"]), True),
    ("LOSS", 7, lambda s: status.fmt_num(s["loss"], 4), True),
    ("ETA", 7, lambda s: status.fmt_age(s["eta_sec"]), True),
    ("BEAT", 6, lambda s: status.fmt_age(s["heartbeat_age"]), True),
    ("CKPT", 6, lambda s: status.fmt_age(s["checkpoint_age"]), True),
    ("NOTES", 0, lambda s: "; ".join(s["problems"]), False),
)
RED, YELLOW, GREEN, DIM, RESET = "\033[31m", "\033[33m", "\033[32m", "\033[2m", "\033[0m"


def _cell(text, width, right):
    if width == 0:
        return text
    if len(text) > width:
        text = text[: width - 1] + "\u2026"
    return text.rjust(width) if right else text.ljust(width)


def state_color(state):
    if state in ("failed",):
        return RED
    if state in ("hung", "stalled", "restarting"):
        return YELLOW
    if state == "running":
        return GREEN
    return DIM


def render(summaries, width=None, color=False, now=None):
    """The table as a string, one line per run, cut to `width` columns."""
    width = width or shutil.get_terminal_size((160, 40)).columns
    lines = [" ".join(_cell(h, w, r) for h, w, _, r in COLUMNS).rstrip()]
    for s in summaries:
        cells = [_cell(fn(s), w, r) for _, w, fn, r in COLUMNS]
        line = " ".join(cells).rstrip()[:width]
        if color:
            line = state_color(s["state"]) + line + RESET
        lines.append(line)
    if not summaries:
        lines.append("(no runs found)")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now or time.time()))
    alerts = sum(1 for s in summaries if s["alert"])
    lines.append("%d run(s), %d need attention  \u00b7  %s" % (len(summaries), alerts, stamp))
    return "\n".join(line[:width] for line in lines)


def top(store, interval=3.0, once=False, out=sys.stdout, color=None):
    """Print the table once, or repaint it every `interval` seconds until Ctrl-C."""
    color = out.isatty() if color is None else color
    try:
        while True:
            store.refresh(force=True)
            now = time.time()
            summaries = [status.summarize(run, now) for run in store.runs()]
            summaries.sort(key=lambda s: (not s["alert"], numbered_key(s["name"])))  # run-2 before run-10
            text = render(summaries, color=color, now=now)
            if once:
                out.write(text + "\n")
                out.flush()
                return 0
            out.write("\033[H\033[2J" + text + "\n")
            out.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
