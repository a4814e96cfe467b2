"""The supervisor: run a command, restart it when it fails, notice when it hangs.

Started by `hvd-job start` (detached) or `hvd-job start --foreground` (Slurm,
systemd), as `python -m hvd_pretrain.supervisor.supervise --run_dir DIR`. All its
settings and the command come from DIR/job.json, so nothing passes through a shell.

One attempt = one run of the command in its own session (process group), with
HVD_PRETRAIN_RUN_DIR and HVD_JOB_NAME exported. After an attempt ends:
  exit 0                       -> finished
  stop asked (SIGTERM/USR1/INT)-> stopped, no restart; exit 128+signal
  exit 2 (the trainer's config error, also when a launcher reports it)
                               -> failed, no restart
  any other exit, a signal, or a hang (the heartbeat step did not advance for
  the stall timeout)           -> restart after backoff * 2**(n-1) seconds
                                  (capped), until `max_restarts` is used up -> failed
Every event goes to logs/supervisor.log and logs/train.log with its reason, and
job.json keeps the history of pids, exit codes and reasons.
"""

import argparse
import collections
import os
import signal
import subprocess
import sys
import threading
import time

from hvd_pretrain.rundir import RunDir, read_json
from hvd_pretrain.supervisor import jobfile, logfiles, outcome, proctree
from hvd_pretrain.supervisor.heartbeat import Heartbeat
from hvd_pretrain.supervisor.ranks import FailureWatch, RankWatch
from hvd_pretrain.supervisor.names import JOB_NAME_ENV, RUN_DIR_ENV

DEFAULTS = {
    "max_restarts": 5,          # restarts after failures or hangs, in total
    "stall_timeout": 900.0,     # s without a step advance in metrics.jsonl -> hang
    "startup_timeout": 1800.0,  # s allowed until the first metrics record of an attempt
    "backoff": 10.0,            # first restart delay; doubles each time
    "backoff_max": 600.0,
    "grace": 120.0,             # s after the stop signal before SIGKILL
    "hang_grace": 10.0,         # s after SIGTERM to a hung run before SIGKILL
    "rank_exit_grace": 60.0,    # s a launcher may outlive a dead rank before its tree is killed
    "poll": 1.0,                # s between checks
    "log_max_bytes": logfiles.DEFAULT_MAX_BYTES,
    "log_backups": logfiles.DEFAULT_BACKUPS,
}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
TAIL_LINES = 400
LEFTOVER_GRACE = 3.0  # s for processes left behind by an exited command, before SIGKILL


def settings_of(job):
    return {key: job.get(key, value) if job.get(key) is not None else value for key, value in DEFAULTS.items()}


class Attempt:
    """One run of the command: the process, its output pump and its heartbeat."""

    def __init__(self, popen, started, heartbeat, tail, failure):
        self.popen = popen
        self.started = started
        self.heartbeat = heartbeat
        self.tail = tail
        self.failure = failure
        self.pump = None


class Supervisor:
    def __init__(self, run_dir, echo=False):
        self.run_dir = os.path.abspath(run_dir)
        self.echo = echo
        self.rundir = RunDir(self.run_dir)
        self.job = jobfile.load(self.run_dir)
        if not self.job:
            raise SystemExit("error: %s has no job.json; start jobs with `hvd-job start`" % self.run_dir)
        self.cfg = settings_of(self.job)
        self.stop_signal = None
        self.wakeup = threading.Event()
        self.events = logfiles.rotating_logger(logfiles.log_path(self.run_dir, logfiles.SUPERVISOR_LOG),
                                               "events", stamp=True)
        self.train_log = logfiles.rotating_logger(logfiles.log_path(self.run_dir, logfiles.TRAIN_LOG), "train",
                                                  self.cfg["log_max_bytes"], self.cfg["log_backups"])

    # ---- bookkeeping -------------------------------------------------------------------------
    def event(self, message):
        self.events.info(message)
        self.output("[hvd-job] %s %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message))

    def output(self, line):
        self.train_log.info(line)
        if self.echo:  # --tmux: show it in the pane too; a closed pane must not stop the job
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                self.echo = False

    def save(self, **fields):
        self.job.update(fields)
        jobfile.save(self.run_dir, self.job)

    def on_stop_signal(self, signum, _frame):
        if self.stop_signal is None:
            self.stop_signal = signum
        self.wakeup.set()

    # ---- one attempt -------------------------------------------------------------------------
    def launch(self):
        env = dict(os.environ)
        env[RUN_DIR_ENV] = self.run_dir
        env[JOB_NAME_ENV] = self.job["name"]
        env.setdefault("PYTHONUNBUFFERED", "1")
        heartbeat = Heartbeat(self.rundir.metrics)
        heartbeat.start()
        ranks = RankWatch(self.rundir.ranks_dir)
        ranks.start()
        popen = subprocess.Popen(self.job["command"], cwd=self.job.get("cwd") or None, env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        attempt = Attempt(popen, time.time(), heartbeat, collections.deque(maxlen=TAIL_LINES), FailureWatch(ranks))
        attempt.pump = threading.Thread(target=self.pump_output, args=(attempt,), daemon=True)
        attempt.pump.start()
        return attempt

    def pump_output(self, attempt):
        for raw in iter(attempt.popen.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            attempt.tail.append(line)
            attempt.failure.output_line(line)
            self.output(line)
        attempt.popen.stdout.close()

    def terminate(self, attempt, sig, grace):
        """Stop the attempt's process tree: `sig` to the leaves first (the ranks), then the groups, then SIGKILL.

        Leaves go first because launchers kill their ranks a few seconds after they are
        signalled themselves, which may cut a checkpoint short.
        """
        root = attempt.popen.pid
        _, procs = proctree.tree_groups(root, [root])
        leaves = [p for p in procs if p.pid != root and not _has_children(p)]
        if leaves:
            for proc in leaves:
                _send(proc, sig)
        else:  # a single process (or a wrapper that has not started its child): its group, once
            proctree.signal_tree(root, sig, [root])
        deadline = time.time() + grace
        groups_signalled = not leaves
        leaves_gone_at = None
        while time.time() < deadline:
            if attempt.popen.poll() is not None:
                self.sweep(attempt, min(LEFTOVER_GRACE, grace))
                return
            if not groups_signalled:
                if leaves_gone_at is None and not any(_alive(p) for p in leaves):
                    leaves_gone_at = time.time()
                # The ranks are done but the launcher lingers, or half the grace is used: the groups now.
                if ((leaves_gone_at is not None and time.time() - leaves_gone_at > LEFTOVER_GRACE)
                        or time.time() > deadline - grace / 2):
                    proctree.signal_tree(root, sig, [root])
                    groups_signalled = True
            time.sleep(0.1)
        self.event("grace period of %.0fs is over: SIGKILL to the process tree" % grace)
        self.kill_everything(attempt, signal.SIGKILL)

    def kill_everything(self, attempt, sig):
        root = attempt.popen.pid
        proctree.signal_tree(root, sig, [root])
        for proc in proctree.descendants(os.getpid()):  # orphans re-parented to us
            _send(proc, sig)
            try:
                os.killpg(os.getpgid(proc.pid), sig)
            except OSError:
                pass

    def stop_grace(self):
        """The grace period: `hvd-job stop --grace` leaves it in stop_request.json, else the job's setting."""
        request = read_json(RunDir(self.run_dir).stop_request) or {}
        try:
            os.unlink(RunDir(self.run_dir).stop_request)
        except OSError:
            pass
        grace = request.get("grace")
        return float(grace) if isinstance(grace, (int, float)) and grace >= 0 else self.cfg["grace"]

    def sweep(self, attempt, wait):
        """The command has exited: SIGTERM whatever it left behind, SIGKILL what is left after `wait` s."""
        keep = (attempt.popen.pid,)
        leftovers = [p for p in proctree.descendants(os.getpid()) if p.pid not in keep and _alive(p)]
        if not leftovers:
            return
        self.event("%d processes outlived the command (%s); terminating them"
                   % (len(leftovers), ", ".join(str(p.pid) for p in leftovers[:8])))
        for proc in leftovers:
            _send(proc, signal.SIGTERM)
        deadline = time.time() + wait
        while time.time() < deadline and any(_alive(p) for p in leftovers):
            proctree.reap_orphans(keep=keep)
            time.sleep(0.1)
        for proc in proctree.descendants(os.getpid()):
            if proc.pid not in keep:
                _send(proc, signal.SIGKILL)
        proctree.reap_orphans(keep=keep)

    def clean_up(self, attempt):
        """After the command exits: no rank of it may survive into the next attempt."""
        self.sweep(attempt, LEFTOVER_GRACE)
        attempt.pump.join(timeout=5)
        proctree.reap_orphans(keep=(attempt.popen.pid,))

    def watch(self, attempt):
        """Wait for the attempt to end. Returns (kind, code, reason); kind in finished/stopped/error/hang.

        A rank seen dead (see ranks.py) makes the attempt an error, not a hang: hang
        detection waits while the launcher is given `rank_exit_grace` s to end by itself.
        """
        hang_reason = failure_reason = announced = None
        stop_handled = None
        while True:
            rc = attempt.popen.poll()
            if rc is not None:
                self.clean_up(attempt)
                break
            if self.stop_signal is not None and stop_handled is None:
                stop_handled = self.stop_signal
                grace = self.stop_grace()
                self.event("stop requested (%s): forwarding it to the process tree, grace %.0fs"
                           % (signal.Signals(stop_handled).name, grace))
                self.terminate(attempt, stop_handled, grace)
                continue
            attempt.heartbeat.poll()
            if stop_handled is None and hang_reason is None and failure_reason is None:
                now = time.time()
                failure = attempt.failure.check(attempt.heartbeat, now)
                if failure and failure != announced:
                    announced = failure
                    self.event("%s; waiting up to %.0fs for the launcher to end"
                               % (failure, self.cfg["rank_exit_grace"]))
                elif announced and not failure:
                    self.event("training advanced again after: %s" % announced)
                    announced = None
                if failure and now - attempt.failure.since > self.cfg["rank_exit_grace"]:
                    failure_reason = "%s and the launcher had not ended %.0fs later" % (
                        failure, self.cfg["rank_exit_grace"])
                    self.save(reason=failure_reason)
                    self.event("%s; killing the process tree" % failure_reason)
                    self.terminate(attempt, signal.SIGTERM, self.cfg["hang_grace"])
                    continue
                if not failure:
                    hang_reason = attempt.heartbeat.stalled(self.cfg["stall_timeout"], self.cfg["startup_timeout"])
                if hang_reason:
                    self.save(state="hung", reason=hang_reason)
                    self.event("%s; killing the process tree" % hang_reason)
                    self.terminate(attempt, signal.SIGTERM, self.cfg["hang_grace"])
                    continue
            self.wakeup.wait(self.cfg["poll"])
            self.wakeup.clear()
            proctree.reap_orphans(keep=(attempt.popen.pid,))
        attempt.heartbeat.poll()
        code = outcome.effective_code(rc, attempt.tail)
        if stop_handled is not None:
            return "stopped", code, "stopped by %s (%s)" % (signal.Signals(stop_handled).name,
                                                            outcome.describe_code(code))
        if hang_reason:
            return "hang", code, hang_reason
        if failure_reason:
            return "error", code, "%s (%s)" % (failure_reason, outcome.describe_code(code))
        if rc == 0:
            return "finished", 0, "finished (exit code 0)"
        if announced:
            return "error", code, "%s; first sign: %s" % (outcome.describe_code(code), announced)
        return "error", code, outcome.describe_code(code)

    # ---- the loop ----------------------------------------------------------------------------
    def run(self):
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.on_stop_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        proctree.become_subreaper()
        try:
            os.unlink(RunDir(self.run_dir).stop_request)  # left over from an earlier run
        except OSError:
            pass
        self.save(supervisor_pid=os.getpid(), supervisor_started=time.time(), restarts=0, error=None)
        self.event("supervisor %d started for job %r: %s" % (os.getpid(), self.job["name"], self.job["command"]))
        while True:
            if self.stop_signal is not None:
                return self.finish("stopped", "stopped by %s before the command started"
                                   % signal.Signals(self.stop_signal).name, 128 + self.stop_signal)
            try:
                attempt = self.launch()
            except OSError as e:
                line = "cannot run %r: %s" % (self.job["command"][0], e.strerror or e)
                self.history_add(None, time.time(), None, line)
                return self.finish("failed", line, 2, error=line)
            self.save(state="running", reason="attempt %d running" % (self.job["restarts"] + 1),
                      pid=attempt.popen.pid, pgid=attempt.popen.pid, attempt_started=attempt.started)
            self.event("attempt %d: pid %d started" % (self.job["restarts"] + 1, attempt.popen.pid))
            kind, code, reason = self.watch(attempt)
            steps = attempt.heartbeat
            detail = "" if steps.first_step is None else " (steps %s..%s)" % (steps.first_step, steps.last_step)
            self.history_add(attempt.popen.pid, attempt.started, code, reason + detail, kind=kind,
                             first_step=steps.first_step, last_step=steps.last_step)
            self.event("attempt %d ended: %s%s" % (self.job["restarts"] + 1, reason, detail))
            if kind == "finished":
                return self.finish("finished", reason, 0)
            if kind == "stopped":
                return self.finish("stopped", reason, 128 + self.stop_signal)
            error = outcome.error_line(attempt.tail)
            if kind == "error" and outcome.is_config_error(code):
                return self.finish("failed", "configuration error (exit 2): not restarting", 2,
                                   error=error or reason)
            if self.job["restarts"] >= self.cfg["max_restarts"]:
                return self.finish("failed", "%s; no restarts left (%d used)" % (reason, self.job["restarts"]), 1,
                                   error=error or reason)
            delay = min(self.cfg["backoff"] * 2 ** self.job["restarts"], self.cfg["backoff_max"])
            self.save(state="restarting", restarts=self.job["restarts"] + 1, error=error or reason,
                      reason="%s; restart %d/%d in %.1fs" % (reason, self.job["restarts"] + 1,
                                                             self.cfg["max_restarts"], delay),
                      next_start=time.time() + delay)
            self.event(self.job["reason"])
            self.wakeup.wait(delay)
            self.wakeup.clear()

    def history_add(self, pid, start, code, reason, **extra):
        entry = {"pid": pid, "start": start, "end": time.time(), "exit_code": code, "reason": reason}
        entry.update(extra)
        self.job.setdefault("history", []).append(entry)
        self.save()

    def finish(self, state, reason, exit_code, error=None):
        fields = {"state": state, "reason": reason, "exit_code": exit_code, "ended": time.time(), "pid": None}
        if error is not None:
            fields["error"] = error
        self.save(**fields)
        self.event("job %s: %s" % (state, reason))
        return exit_code


def _has_children(proc):
    try:
        return bool(proc.children())
    except Exception:  # psutil.Error; the process is gone
        return False


def _alive(proc):
    try:
        return proc.is_running() and proc.status() != "zombie"
    except Exception:
        return False


def _send(proc, sig):
    try:
        proc.send_signal(sig)
    except Exception:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hvd_pretrain.supervisor.supervise",
                                     description="Supervise the job described by RUN_DIR/job.json.")
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--lock_fd", type=int, default=None, help="job lock inherited from `hvd-job start`")
    parser.add_argument("--lock_wait", type=float, default=10.0)
    parser.add_argument("--echo", action="store_true", help="also print the output (tmux panes)")
    args = parser.parse_args(argv)
    run_dir = os.path.abspath(args.run_dir)
    lock_fd = args.lock_fd if args.lock_fd is not None else jobfile.lock_with_retry(run_dir, args.lock_wait)
    if lock_fd is None:
        print("error: job in %s is already running (its lock is held); see `hvd-job status`" % run_dir,
              file=sys.stderr)
        return 1
    os.set_inheritable(lock_fd, False)
    return Supervisor(run_dir, echo=args.echo).run()


if __name__ == "__main__":
    sys.exit(main())
