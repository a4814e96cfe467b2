"""Start the supervisor so that it outlives the terminal, the SSH connection and the login.

Launchers:
  direct   a new session (setsid): no controlling terminal, so no SIGHUP; stdin is
           /dev/null and output goes to logs/. Enough unless logind kills the session.
  systemd  `systemd-run --user`: the job leaves the login session's scope, so
           KillUserProcesses=yes does not reach it. Survives the last logout only
           with lingering on (`loginctl enable-linger`).
  tmux     a named tmux session showing the output live (`tmux attach -t ...`).
           Closing or killing that session does not stop the job.
  auto     direct, or systemd where logind would kill a direct job; refuses with the
           fixing command when neither survives.
"""

import os
import shlex
import shutil
import subprocess
import sys
import time

from hvd_pretrain.supervisor import jobfile, logfiles, logind, proctree
from hvd_pretrain.supervisor.names import RUN_DIR_ENV, safe_token
from hvd_pretrain.rundir import LOGS
from hvd_pretrain.errors import JobError

LAUNCHERS = ("auto", "direct", "systemd", "tmux")
# Session-bound variables not worth carrying into a job that outlives the session.
ENV_SKIP = {"_", "SHLVL", "OLDPWD", "PWD", "TERM", "SSH_TTY", "SSH_CONNECTION", "SSH_CLIENT", "STY", "TMUX",
            "TMUX_PANE", "WINDOW", "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "LS_COLORS",
            "PS1", "PROMPT_COMMAND", "INVOCATION_ID", "JOURNAL_STREAM"}


class StartError(JobError):
    """The job cannot be started; the message says why and what to do. `code`: the exit code."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = self.exit_code = code


def choose_launcher(requested, facts):
    """The launcher to use, or StartError with the exact fix when the job would not survive logout."""
    if requested in ("direct", "systemd"):
        if requested == "systemd" and not facts.systemd_run:
            raise StartError("--launcher=systemd needs systemd-run, which is not installed")
        return requested
    if not facts.at_risk:
        return requested if requested == "tmux" else "direct"
    # logind kills this session's processes at logout.
    why = ("systemd-logind kills every process of this login session at logout "
           "(KillUserProcesses=yes, from %s)" % facts.kill_source)
    if not facts.systemd_run:
        raise StartError("%s and systemd-run is not installed; ask an admin to add %s to KillExcludeUsers "
                         "in /etc/systemd/logind.conf, or start the job from a batch system" % (why, facts.user))
    if facts.linger is not True:
        raise StartError("%s and lingering is off for %s, so `systemd-run --user` jobs would stop at logout too. "
                         "Fix: %s   (then start again)" % (why, facts.user, logind.enable_linger_command(facts.user)))
    return "tmux+systemd" if requested == "tmux" else "systemd"


def supervisor_argv(run_dir, echo=False):
    argv = [sys.executable, "-m", "hvd_pretrain.supervisor.supervise", "--run_dir", run_dir]
    return argv + (["--echo"] if echo else [])


def carried_env():
    return {k: v for k, v in os.environ.items() if k not in ENV_SKIP and "\n" not in v and "\0" not in v}


def _systemd_prefix(job, scope):
    unit = safe_token(job["name"])
    argv = ["systemd-run", "--user", "--quiet", "--collect", "--unit", unit + ("-tmux" if scope else "")]
    if scope:
        return argv + ["--scope"]
    argv += ["--working-directory", job["cwd"], "-p", "KillMode=mixed",
             "-p", "TimeoutStopSec=%d" % int(job.get("grace", 120) + 30)]
    for key, value in sorted(carried_env().items()):
        argv += ["-E", "%s=%s" % (key, value)]
    return argv


def spawn(job, launcher, lock_fd):
    """Start the supervisor with `launcher`. Returns a short description of where it runs."""
    run_dir = job["run_dir"]
    err_path = logfiles.log_path(run_dir, logfiles.SUPERVISOR_ERR)
    if launcher == "direct":
        with open(err_path, "ab") as err:
            subprocess.Popen(supervisor_argv(run_dir) + ["--lock_fd", str(lock_fd)], cwd=job["cwd"],
                             stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
                             pass_fds=(lock_fd,))
        return "a new session (no controlling terminal)"
    os.close(lock_fd)  # the supervisor takes the lock itself
    if launcher == "systemd":
        argv = _systemd_prefix(job, scope=False) + supervisor_argv(run_dir)
        _run_launcher(argv, job)
        return "systemd user unit %s.service (systemctl --user status %s)" % (safe_token(job["name"]),
                                                                              safe_token(job["name"]))
    if not shutil.which("tmux"):
        raise StartError("--tmux needs tmux, which is not installed (apt-get install tmux)")
    session = safe_token(job["name"])
    inner = "%s 2>>%s" % (shlex.join(supervisor_argv(run_dir, echo=True)), shlex.quote(err_path))
    argv = ["tmux", "new-session", "-d", "-s", session, "-c", job["cwd"]]
    for key, value in sorted(carried_env().items()):
        argv += ["-e", "%s=%s" % (key, value)]
    argv += [inner]
    if launcher == "tmux+systemd":
        argv = _systemd_prefix(job, scope=True) + argv
    _run_launcher(argv, job)
    return "tmux session %s (attach: tmux attach -t %s)" % (session, session)


def _run_launcher(argv, job):
    try:
        out = subprocess.run(argv, cwd=job["cwd"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StartError("could not run %s: %s" % (argv[0], e))
    if out.returncode != 0:
        raise StartError("%s failed (exit %d): %s" % (argv[0], out.returncode,
                                                      (out.stderr or out.stdout).strip().splitlines()[-1:]))


def wait_confirmed(run_dir, timeout=20.0):
    """Wait until the supervisor holds the lock and has started the command. Returns the job or None."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = jobfile.load(run_dir) or {}
        started = job.get("state") == "running" or job.get("next_start")  # running, or failed once already
        if (job.get("supervisor_pid") and started and proctree.pid_alive(job["supervisor_pid"])
                and jobfile.is_active(run_dir)):
            return job
        if job.get("supervisor_pid") and job.get("state") in jobfile.FINAL_STATES:
            return job  # it already ran to the end (e.g. a command that does not exist)
        time.sleep(0.05)
    return None


def start(name, run_dir, command, settings, launcher="auto", facts=None):
    """Create or reuse the run directory, write job.json and start the supervisor detached."""
    if launcher not in LAUNCHERS:
        raise StartError("unknown launcher %r; choose one of %s" % (launcher, ", ".join(LAUNCHERS)), 2)
    os.makedirs(os.path.join(run_dir, LOGS), exist_ok=True)
    lock_fd = jobfile.try_lock(run_dir)
    if lock_fd is None:
        previous = jobfile.load(run_dir) or {}
        raise StartError("job %r is already running (supervisor pid %s, run dir %s); choose another name or "
                         "`hvd-job stop %s` first" % (name, previous.get("supervisor_pid"), run_dir,
                                                      shlex.quote(name)))
    try:
        previous = jobfile.load(run_dir)
        leftovers = proctree.processes_with_env(RUN_DIR_ENV, run_dir)
        if leftovers:
            raise StartError("processes of an earlier run of %r are still alive (pids %s); stop them with "
                             "`hvd-job stop %s`" % (name, " ".join(str(p.pid) for p in leftovers[:8]),
                                                    shlex.quote(name)))
        chosen = choose_launcher(launcher, facts or logind.facts())
        settings = dict(settings, launcher=chosen, cwd=os.getcwd())
        job = jobfile.new_job(name, run_dir, command, settings, previous)
        jobfile.save(run_dir, job)
        try:
            where = spawn(job, chosen, lock_fd)
        except (StartError, OSError) as e:
            job.update(state="failed", reason="could not start the supervisor: %s" % e, error=str(e))
            jobfile.save(run_dir, job)
            raise StartError(str(e)) from e
    finally:
        try:
            os.close(lock_fd)
        except OSError:
            pass
    confirmed = wait_confirmed(run_dir)
    if confirmed is None:
        err = logfiles.tail_lines(logfiles.log_path(run_dir, logfiles.SUPERVISOR_ERR), 5)
        raise StartError("the supervisor of %r did not come up within 20s; see %s%s" % (
            name, logfiles.log_path(run_dir, logfiles.SUPERVISOR_ERR), (": " + err[-1]) if err else ""))
    return confirmed, where
