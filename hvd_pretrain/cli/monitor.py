"""hvd-monitor: watch training runs.

  hvd-monitor serve [--runs DIR] [--host 127.0.0.1] [--port 8265]   web dashboard + /metrics
  hvd-monitor top [--runs DIR] [--once]                              terminal table
  hvd-monitor report RUN... -o report.html                           self-contained HTML report
  hvd-monitor tensorboard RUN... [--launch]                          TensorBoard over the runs' tb/

The monitor only reads run directories; it never imports TensorFlow or Horovod,
so it starts instantly and can run on a login node. (`tensorboard` over runs whose
paths hold a comma writes one directory of symbolic links under ~/.cache, see
hvd_pretrain/telemetry/tensorboard.py.)
"""

import argparse
import os
import sys

from hvd_pretrain.cli.entry import entry

RUNS_ENV = "HVD_PRETRAIN_RUNS"  # the same default as hvd-job's --runs_dir


def _add_runs(parser):
    parser.add_argument("--runs", "--runs_dir", "--runs-dir", dest="runs", default=None,
                        help="directory holding run directories (default: $%s or ./runs)" % RUNS_ENV)


def _parser():
    p = argparse.ArgumentParser(prog="hvd-monitor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="web dashboard, JSON API and Prometheus /metrics")
    _add_runs(s)
    s.add_argument("--run", action="append", default=[], metavar="RUN_DIR",
                   help="also watch this run directory (repeatable)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; anything else is reachable without authentication)")
    s.add_argument("--port", type=int, default=8265, help="port (default 8265; 0 picks a free one)")
    s.add_argument("--refresh", type=float, default=2.0, help="seconds between reads of the run directories")
    s.add_argument("--verbose", action="store_true", help="log every request")

    t = sub.add_parser("top", help="refreshing terminal table of all runs")
    _add_runs(t)
    t.add_argument("--run", action="append", default=[], metavar="RUN_DIR", help="also show this run directory")
    t.add_argument("--interval", type=float, default=3.0, help="seconds between repaints")
    t.add_argument("--once", action="store_true", help="print the table once and exit")
    t.add_argument("--no-color", action="store_true", help="no ANSI colours")

    r = sub.add_parser("report", help="self-contained HTML report (charts included) for one or more runs")
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    r.add_argument("-o", "--output", default="report.html", help="output HTML file (default report.html)")
    r.add_argument("--title", default=None, help="report title")

    b = sub.add_parser("tensorboard", help="print (or --launch) the TensorBoard command for runs")
    b.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    b.add_argument("--port", type=int, default=6006)
    b.add_argument("--host", default=None, help="TensorBoard --host (default: its own, localhost)")
    b.add_argument("--launch", action="store_true", help="start TensorBoard instead of printing the command")
    return p


def _error(message, code=2):
    print("hvd-monitor: error: %s" % message, file=sys.stderr)
    return code


def _check_runs_dir(args):
    if args.runs is None:
        args.runs = os.environ.get(RUNS_ENV) or "runs"
    if args.runs and not os.path.isdir(args.runs) and not args.run:
        return _error("--runs=%s is not a directory; pass the directory holding your run directories "
                      "(e.g. --runs=/shared/runs) or --run=RUN_DIR" % args.runs)
    for path in args.run:
        if not os.path.isdir(path):
            return _error("--run=%s is not a directory" % path)
    return None


def _serve(args):
    bad = _check_runs_dir(args)
    if bad is not None:
        return bad
    if not 0 <= args.port <= 65535:
        return _error("--port=%d is out of range 0-65535" % args.port)
    from hvd_pretrain.telemetry import server
    runs_dir = args.runs if os.path.isdir(args.runs) else None
    try:
        return server.serve(runs_dir, host=args.host, port=args.port, paths=args.run, verbose=args.verbose,
                            refresh_interval=args.refresh)
    except OSError as e:
        return _error("cannot listen on %s:%d: %s; pick another --port or --host" % (args.host, args.port, e.strerror or e), 1)


def _top(args):
    bad = _check_runs_dir(args)
    if bad is not None:
        return bad
    from hvd_pretrain.telemetry import top
    from hvd_pretrain.telemetry.store import RunStore
    store = RunStore(args.runs if os.path.isdir(args.runs) else None, args.run, min_interval=0.0)
    return top.top(store, interval=args.interval, once=args.once, color=False if args.no_color else None)


def _report(args):
    for path in args.runs:
        if not os.path.isdir(path):
            return _error("%s is not a run directory" % path)
    from hvd_pretrain.telemetry import report
    from hvd_pretrain.telemetry.store import RunStore
    store = RunStore(None, args.runs, min_interval=0.0)
    store.refresh(force=True)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        return _error("-o %s: directory %s does not exist" % (args.output, out_dir))
    size = report.write(store.runs(), args.output, args.title)
    print("hvd-monitor: wrote %s (%.1f kB, %d run(s))" % (args.output, size / 1024.0, len(store.runs())))
    return 0


def _tensorboard(args):
    from hvd_pretrain.telemetry import tensorboard
    argv = tensorboard.command(args.runs, port=args.port, host=args.host)  # MonitorError: one line, exit 2
    if not args.launch:
        print(tensorboard.format_command(argv))
        return 0
    if not os.path.isabs(argv[0]) or not os.access(argv[0], os.X_OK):
        if argv[0] != sys.executable:
            return _error("tensorboard is not installed; pip install tensorboard", 1)
    print("hvd-monitor: %s" % tensorboard.format_command(argv), file=sys.stderr, flush=True)
    os.execv(argv[0], argv)
    return 1  # only reached if execv returns, which it does not


COMMANDS = {"serve": _serve, "top": _top, "report": _report, "tensorboard": _tensorboard}


@entry
def run(argv=None):
    argv = list(sys.argv if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit as e:
        return int(e.code or 0)
    if not args.command:
        parser.print_help()
        return 2
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(run())
