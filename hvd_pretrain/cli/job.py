"""hvd-job: start training so that it survives logout, restart it when it fails, explain why it died.

  hvd-job start NAME [options] -- horovodrun -np 32 -hostfile hosts hvd-pretrain --flagfile=...
  hvd-job status [NAME] [--json]
  hvd-job logs NAME [-f] [-n LINES] [--supervisor]
  hvd-job stop NAME [--grace S]
  hvd-job restart NAME
  hvd-job doctor [--hostfile FILE] [--np N] [--run_dir DIR]

A job NAME lives in RUNS/NAME (RUNS = --runs_dir, else $HVD_PRETRAIN_RUNS, else ./runs),
holding job.json and logs/. The supervised command gets HVD_PRETRAIN_RUN_DIR=RUNS/NAME and
HVD_JOB_NAME=NAME in its environment; hvd-pretrain uses that run directory when --run_dir
is not given. The command after `--` is run as a list of arguments, never through a shell.

This module parses arguments with argparse (sub-commands and a `--`-separated command
line), imports nothing heavy, and returns an exit code: 0 ok, 1 failure, 2 usage error.
"""

import argparse
import json
import os
import shlex
import sys

from hvd_pretrain.cli.entry import entry
from hvd_pretrain.rundir import LOGS
from hvd_pretrain.supervisor import control, doctor, jobfile, launch, logfiles
from hvd_pretrain.supervisor.names import run_dir_for, runs_root, validate_name
from hvd_pretrain.supervisor.supervise import DEFAULTS, Supervisor

SETTING_FLAGS = (  # (flag, job.json key, help)
    ("--restarts", "max_restarts", "restarts allowed after crashes and hangs (default %(default)s)"),
    ("--stall-timeout", "stall_timeout", "seconds without a step advance in metrics.jsonl before the run is "
                                         "declared hung and restarted (default %(default)s)"),
    ("--startup-timeout", "startup_timeout", "seconds allowed until an attempt's first metrics record "
                                             "(default %(default)s)"),
    ("--backoff", "backoff", "first restart delay in seconds; doubles each restart (default %(default)s)"),
    ("--backoff-max", "backoff_max", "longest restart delay (default %(default)s)"),
    ("--grace", "grace", "seconds between the stop signal and SIGKILL (default %(default)s)"),
    ("--hang-grace", "hang_grace", "seconds between SIGTERM and SIGKILL for a hung run (default %(default)s)"),
    ("--rank-exit-grace", "rank_exit_grace", "seconds the launcher may outlive a dead rank before the process "
                                             "tree is killed and the attempt counts as a crash (default %(default)s)"),
    ("--poll", "poll", argparse.SUPPRESS),
)


def _error(message, code=2):
    """A job that ended badly, or a command line argparse does not check: one line and `code`."""
    print("error: %s" % message, file=sys.stderr)
    return code


def _add_runs_dir(parser):
    parser.add_argument("--runs_dir", "--runs-dir", default=None,
                        help="where job run directories live (default: $HVD_PRETRAIN_RUNS or ./runs)")


def build_parser():
    parser = argparse.ArgumentParser(prog="hvd-job", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n\n")[1].splitlines()))
    sub = parser.add_subparsers(dest="action", metavar="ACTION")

    start = sub.add_parser("start", help="start a supervised job, detached (command after --)")
    start.add_argument("name", metavar="NAME")
    _add_runs_dir(start)
    for flag, key, text in SETTING_FLAGS:
        kind = int if key == "max_restarts" else float
        spellings = sorted({flag, "--" + flag[2:].replace("-", "_")}, reverse=True)
        start.add_argument(*spellings, dest=key, type=kind, default=DEFAULTS[key], help=text)
    start.add_argument("--launcher", choices=launch.LAUNCHERS, default="auto",
                       help="how to detach: auto (default), direct, systemd (systemd-run --user), tmux")
    start.add_argument("--tmux", action="store_const", dest="launcher", const="tmux",
                       help="run inside a named tmux session you can attach to")
    start.add_argument("--foreground", action="store_true",
                       help="supervise in this process (Slurm batch scripts, systemd units)")

    status = sub.add_parser("status", help="table of jobs, or one job in detail")
    status.add_argument("name", metavar="NAME", nargs="?")
    _add_runs_dir(status)
    status.add_argument("--json", action="store_true")

    logs = sub.add_parser("logs", help="print a job's log; -f to follow")
    logs.add_argument("name", metavar="NAME")
    _add_runs_dir(logs)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines while the job runs")
    logs.add_argument("-n", "--lines", type=int, default=200, help="lines to print first (0: all)")
    logs.add_argument("--supervisor", action="store_true", help="the supervisor's event log instead")

    stop = sub.add_parser("stop", help="SIGTERM the job (it checkpoints), SIGKILL after the grace period")
    stop.add_argument("name", metavar="NAME")
    _add_runs_dir(stop)
    stop.add_argument("--grace", type=float, default=None, help="seconds before SIGKILL (default: the job's)")

    restart = sub.add_parser("restart", help="stop the job if it runs, then start it again with the same command")
    restart.add_argument("name", metavar="NAME")
    _add_runs_dir(restart)
    restart.add_argument("--grace", type=float, default=None)

    doc = sub.add_parser("doctor", help="check what could kill a long run, with the fix for each")
    _add_runs_dir(doc)
    doc.add_argument("--run_dir", "--run-dir", default=None, help="the run directory to check (disk, NFS)")
    doc.add_argument("--hostfile", default=None, help="check that its hosts are reachable by SSH")
    doc.add_argument("--np", type=int, default=None,
                     help="ranks per host, checked against this host's GPUs (default: its slots in --hostfile)")
    doc.add_argument("--skip", action="append", default=[], choices=doctor.CHECKS,
                     help="leave out a check (repeatable); `horovod`, and `gpu` on a GPU host, take ~10-40 s as "
                     "they import TensorFlow")
    doc.add_argument("--json", action="store_true")
    return parser


def _follow_hint(name, runs_dir):
    extra = " --runs_dir %s" % shlex.quote(runs_dir) if runs_dir else ""
    return shlex.quote(name) + extra


def cmd_start(args, command):
    if not command:
        return _error("give the command to run after `--`, e.g. hvd-job start %s -- horovodrun -np 2 "
                      "hvd-pretrain" % shlex.quote(args.name))
    run_dir = run_dir_for(args.name, args.runs_dir)
    settings = {key: getattr(args, key) for _, key, _ in SETTING_FLAGS}
    if args.foreground:
        return _start_foreground(args.name, run_dir, command, settings)
    job, where = launch.start(args.name, run_dir, command, settings, launcher=args.launcher)
    if job.get("state") == "failed":
        return _error("job %s failed at once: %s" % (shlex.quote(args.name), job.get("error") or job.get("reason")), 1)
    hint = _follow_hint(args.name, args.runs_dir)
    print("started job %s: supervisor pid %s in %s" % (shlex.quote(args.name), job.get("supervisor_pid"), where))
    print("  run dir  %s" % run_dir)
    print("  log      %s" % logfiles.log_path(run_dir))
    print("  follow   hvd-job logs %s -f" % hint)
    print("  status   hvd-job status %s" % hint)
    print("  stop     hvd-job stop %s" % hint)
    return 0


def _start_foreground(name, run_dir, command, settings):
    os.makedirs(os.path.join(run_dir, LOGS), exist_ok=True)
    lock_fd = jobfile.try_lock(run_dir)
    if lock_fd is None:
        return _error("job %r is already running; choose another name or `hvd-job stop %s` first"
                      % (name, shlex.quote(name)), 1)
    settings = dict(settings, launcher="foreground", cwd=os.getcwd())
    jobfile.save(run_dir, jobfile.new_job(name, run_dir, command, settings, jobfile.load(run_dir)))
    print("supervising job %s in the foreground; log %s" % (shlex.quote(name), logfiles.log_path(run_dir)),
          flush=True)
    return Supervisor(run_dir).run()


def cmd_status(args):
    root = runs_root(args.runs_dir)
    if args.name:
        run_dir = run_dir_for(args.name, args.runs_dir)
        if not jobfile.load(run_dir):
            return _error("no job named %r in %s" % (args.name, root), 1)
        row = control.job_status(args.name, run_dir)
        print(json.dumps(row, indent=2, sort_keys=True) if args.json else control.format_detail(row))
        return 0
    rows = [control.job_status(name, path) for name, path in jobfile.list_jobs(root)]
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    elif not rows:
        print("no jobs in %s" % root)
    else:
        print(control.format_table(rows))
    return 0


def cmd_logs(args):
    run_dir = run_dir_for(args.name, args.runs_dir)
    path = logfiles.log_path(run_dir, logfiles.SUPERVISOR_LOG if args.supervisor else logfiles.TRAIN_LOG)
    if not os.path.exists(path):
        return _error("no log at %s (is %r a job in %s?)" % (path, args.name, runs_root(args.runs_dir)), 1)
    if not args.follow:
        for line in logfiles.tail_lines(path, args.lines):
            print(line)
        return 0
    return logfiles.follow(path, lines=args.lines, keep_going=lambda: jobfile.is_active(run_dir))


def cmd_stop(args):
    run_dir = run_dir_for(args.name, args.runs_dir)
    job = control.stop(run_dir, grace=args.grace)
    print("job %s %s: %s" % (shlex.quote(args.name), job.get("state"), job.get("reason")))
    return 0


def cmd_restart(args):
    run_dir = run_dir_for(args.name, args.runs_dir)
    job = jobfile.load(run_dir)
    if not job or not job.get("command"):
        return _error("no job named %r in %s" % (args.name, runs_root(args.runs_dir)), 1)
    if jobfile.is_active(run_dir):
        code = cmd_stop(args)
        if code:
            return code
    settings = {key: job.get(key, DEFAULTS[key]) for _, key, _ in SETTING_FLAGS}
    launcher = job.get("launcher") if job.get("launcher") in launch.LAUNCHERS else "auto"
    if job.get("launcher") == "tmux+systemd":
        launcher = "tmux"
    job, where = launch.start(args.name, run_dir, job["command"], settings, launcher=launcher)
    print("restarted job %s: supervisor pid %s in %s; log %s" % (
        shlex.quote(args.name), job.get("supervisor_pid"), where, logfiles.log_path(run_dir)))
    return 0


def cmd_doctor(args):
    run_dir = args.run_dir or runs_root(args.runs_dir)
    checks = doctor.run_checks(run_dir, hostfile=args.hostfile, skip=args.skip, np=args.np)
    if args.json:
        print(json.dumps(doctor.as_dicts(checks), indent=2))
    else:
        print(doctor.format_checks(checks))
    return 1 if any(c.level == doctor.FAIL for c in checks) else 0


@entry
def run(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv[1:])
    command = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not args.action:
        parser.print_help()
        return 2
    if command and args.action != "start":
        return _error("only `hvd-job start` takes a command after `--`")
    if getattr(args, "name", None) is not None:
        validate_name(args.name)  # JobNameError: one line, exit 2
    handler = {"start": lambda: cmd_start(args, command), "status": lambda: cmd_status(args),
               "logs": lambda: cmd_logs(args), "stop": lambda: cmd_stop(args),
               "restart": lambda: cmd_restart(args), "doctor": lambda: cmd_doctor(args)}[args.action]
    return handler()


if __name__ == "__main__":
    sys.exit(run())
