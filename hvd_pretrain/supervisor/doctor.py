"""`hvd-job doctor`: why would a run that should last days die, and what fixes it.

Each check returns a Check(name, level, message, fix) with level OK, WARN or FAIL.
Checks that run programs (klist, horovodrun, mpirun, ssh) do so with short
timeouts and never through a shell.
"""

import os
import re
import resource
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from hvd_pretrain.nvidia import run_program as _run  # (returncode, output) or (None, reason)
from hvd_pretrain.supervisor import logind
from hvd_pretrain.rundir import RunDir

OK, WARN, FAIL = "OK", "WARN", "FAIL"
GiB = 1024 ** 3
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "afs", "lustre", "gpfs", "beegfs", "ceph", "fuse.sshfs")


@dataclass
class Check:
    name: str
    level: str
    message: str
    fix: str = ""


def check_logind(facts=None):
    f = facts or logind.facts()
    fix_linger = logind.enable_linger_command(f.user)
    if f.kills_this_user is None:
        return Check("logind", OK if not f.session_scope else WARN,
                     "systemd-logind setting KillUserProcesses is unknown here (no logind, or no access); "
                     "not inside a login session scope" if not f.session_scope else
                     "KillUserProcesses is unknown and this shell is in %s" % f.session_scope,
                     "" if not f.session_scope else "check /etc/systemd/logind.conf; hvd-job start detaches anyway")
    if f.kills_this_user is False:
        extra = "" if f.kill_user_processes is False else " (%s is in KillExcludeUsers)" % f.user
        return Check("logind", OK, "KillUserProcesses=%s%s: logout does not kill background jobs; linger=%s"
                     % ("yes" if f.kill_user_processes else "no", extra, _yn(f.linger)))
    if f.linger is True:
        return Check("logind", OK if f.systemd_run else FAIL,
                     "KillUserProcesses=yes (from %s) and linger is on: hvd-job start runs jobs with systemd-run "
                     "--user, outside the login session" % f.kill_source,
                     "" if f.systemd_run else "install systemd-run, or ask an admin to add %s to KillExcludeUsers"
                     % f.user)
    return Check("logind", FAIL if f.session_scope else WARN,
                 "KillUserProcesses=yes (from %s) and linger is %s: logout kills every process you started, "
                 "nohup and setsid included, and the user manager stops too" % (f.kill_source, _yn(f.linger)),
                 "run `%s` once; hvd-job start then uses systemd-run --user" % fix_linger)


def _yn(value):
    return {True: "on", False: "off"}.get(value, "unknown")


def sighup_ignored(status_path="/proc/self/status"):
    """True/False from the SigIgn mask of this process (SIGHUP is signal 1, bit 0), None if unreadable."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_sighup(status_path="/proc/self/status"):
    ignored = sighup_ignored(status_path)
    if ignored is None:
        return Check("sighup", WARN, "cannot read the signal mask of this process", "")
    if ignored:
        return Check("sighup", OK, "SIGHUP is ignored in this shell (started under nohup); hvd-pretrain keeps it "
                     "ignored, but a program that installs its own handler would undo nohup")
    return Check("sighup", OK if not os.isatty(0) else WARN,
                 "SIGHUP has its default action here: a job started with `cmd &` dies when this terminal or SSH "
                 "connection closes" + ("" if os.isatty(0) else " (no terminal now)"),
                 "start long runs with `hvd-job start` (new session, no terminal), not with & or nohup")


def mount_of(path, mounts_path="/proc/mounts"):
    """(mount point, fs type, options) of the mount holding `path` (longest matching mount point)."""
    path = os.path.realpath(path)
    best = ("/", "unknown", "")
    try:
        with open(mounts_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 4:
                    continue
                point = parts[1].replace("\\040", " ")
                if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                    best = (point, parts[2], parts[3])
    except OSError:
        pass
    return best


def existing_parent(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_kerberos(run_dir, mounts_path="/proc/mounts"):
    point, fstype, options = mount_of(existing_parent(run_dir), mounts_path)
    if fstype not in NETWORK_FS:
        return Check("kerberos", OK, "%s is on %s (%s), not a network filesystem: ticket expiry cannot block "
                     "checkpoint writes" % (run_dir, fstype, point))
    kerberized = "sec=krb5" in options
    code, text = _run(["klist"], timeout=5)
    if code is None:
        level = FAIL if kerberized else WARN
        return Check("kerberos", level, "%s is on %s (%s%s) and klist is unavailable: %s" % (
            run_dir, fstype, point, ", sec=krb5" if kerberized else "", text),
            "install krb5-user, or keep the run directory on local or scratch disk")
    if code != 0:
        return Check("kerberos", FAIL if kerberized else WARN,
                     "%s is on %s and there is no Kerberos ticket (klist: %s)" % (run_dir, fstype,
                                                                                  text.strip()[:120]),
                     "kinit, then keep it renewed (krenew -K 60, or k5start), or use local/scratch disk")
    return Check("kerberos", WARN, "%s is on %s: writes stop working when the Kerberos ticket expires "
                 "(often after 10 h). Current tickets: %s" % (run_dir, fstype, _ticket_summary(text)),
                 "keep the ticket renewed for the whole run (kinit -r 7d; krenew -K 60 -b), or write the run "
                 "directory to local or scratch disk")


def _ticket_summary(klist_text):
    match = re.search(r"^\s*(\S+\s+\S+)\s+(\S+\s+\S+)\s+krbtgt/", klist_text, re.M)
    return "krbtgt expires %s" % match.group(2) if match else "see klist"


def check_disk(run_dir, warn_gib=50.0, fail_gib=5.0):
    where = existing_parent(RunDir(run_dir).checkpoints)
    usage = shutil.disk_usage(where)
    free = usage.free / GiB
    message = "%.1f GiB free of %.1f GiB where checkpoints go (%s)" % (free, usage.total / GiB, where)
    if free < fail_gib:
        return Check("disk", FAIL, message, "free space or point --runs_dir at a larger disk; a BERT-large "
                     "checkpoint with optimizer state is ~4 GiB")
    if free < warn_gib:
        return Check("disk", WARN, message, "keep fewer checkpoints or move the run directory to a larger disk")
    return Check("disk", OK, message)


def check_limits(min_nofile=4096, min_nproc=4096):
    problems, parts = [], []
    for label, limit, minimum in (("open files", resource.RLIMIT_NOFILE, min_nofile),
                                  ("processes", resource.RLIMIT_NPROC, min_nproc)):
        soft, hard = resource.getrlimit(limit)
        shown = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
        parts.append("%s %s" % (label, shown))
        if soft != resource.RLIM_INFINITY and soft < minimum:
            problems.append("%s soft limit %d < %d" % (label, soft, minimum))
    if problems:
        return Check("limits", WARN, "; ".join(problems) + " (many ranks, data readers and NCCL use many)",
                     "`ulimit -n 65536; ulimit -u 65536` in the job script, or raise them in "
                     "/etc/security/limits.conf")
    return Check("limits", OK, ", ".join(parts))


def parse_check_build(text):
    """{'frameworks': [...], 'controllers': [...], 'operations': [...]} from `horovodrun --check-build`."""
    sections, current = {"frameworks": [], "controllers": [], "operations": []}, None
    for line in text.splitlines():
        low = line.lower()
        if "available frameworks" in low:
            current = "frameworks"
        elif "available controllers" in low:
            current = "controllers"
        elif "available tensor operations" in low:
            current = "operations"
        else:
            match = re.match(r"\s*\[(.)\]\s*(\S.*)$", line)
            if match and current and match.group(1).strip():
                sections[current].append(match.group(2).strip())
    return sections


def check_horovod():
    code, text = _run(["horovodrun", "--check-build"], timeout=180)  # imports each framework: slow
    if code is None or code != 0:
        return Check("horovod", FAIL, "horovodrun --check-build did not work: %s" % text.strip()[-160:],
                     "activate the environment that has Horovod (make install), or reinstall Horovod with "
                     "HOROVOD_WITH_TENSORFLOW=1")
    build = parse_check_build(text)
    message = "frameworks: %s; controllers: %s; tensor ops: %s" % tuple(
        ", ".join(build[k]) or "none" for k in ("frameworks", "controllers", "operations"))
    if "TensorFlow" not in build["frameworks"]:
        return Check("horovod", FAIL, message, "rebuild Horovod with HOROVOD_WITH_TENSORFLOW=1")
    if not build["controllers"]:
        return Check("horovod", FAIL, message, "rebuild Horovod with HOROVOD_WITH_GLOO=1 or HOROVOD_WITH_MPI=1")
    return Check("horovod", OK, message)


def check_mpi():
    code, text = _run(["mpirun", "--version"], timeout=15)
    if code is None or code != 0:
        return Check("mpi", WARN, "no working mpirun (%s); horovodrun still works with Gloo" % text.strip()[:120],
                     "install OpenMPI (apt-get install openmpi-bin libopenmpi-dev) to use horovodrun --mpi")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "mpirun")
    return Check("mpi", OK, first)


def parse_hostfile(path):
    """Host names from a hostfile ('host slots=N' or 'host:N' per line; # comments)."""
    hosts = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                host = line.split()[0].split(":")[0]
                if host not in hosts:
                    hosts.append(host)
    return hosts


def is_local_host(host):
    if host in ("localhost", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        return socket.gethostbyname(host) in ("127.0.0.1", "127.0.1.1")
    except OSError:
        return False


def ssh_reachable(host, connect_timeout=5):
    code, text = _run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % connect_timeout,
                       "-o", "StrictHostKeyChecking=accept-new", host, "true"], timeout=connect_timeout + 5)
    if code == 0:
        return True, ""
    return False, text.strip().splitlines()[-1] if text.strip() else "exit %s" % code


def check_hostfile(path, connect_timeout=5):
    try:
        hosts = parse_hostfile(path)
    except OSError as e:
        return Check("hostfile", FAIL, "cannot read hostfile %s: %s" % (path, e.strerror), "fix the path")
    if not hosts:
        return Check("hostfile", FAIL, "hostfile %s lists no hosts" % path, "one line per host: 'node1 slots=8'")
    remote = [h for h in hosts if not is_local_host(h)]
    with ThreadPoolExecutor(max_workers=min(16, len(remote) or 1)) as pool:
        results = list(pool.map(lambda h: (h,) + ssh_reachable(h, connect_timeout), remote))
    bad = [(h, why) for h, ok, why in results if not ok]
    summary = "%d hosts (%d local), %d reachable by SSH" % (len(hosts), len(hosts) - len(remote),
                                                          len(remote) - len(bad))
    if bad:
        detail = "; ".join("%s: %s" % (h, why[:100]) for h, why in bad[:5])
        return Check("hostfile", FAIL, "%s; unreachable: %s" % (summary, detail),
                     "set up password-less SSH from this host (ssh-copy-id HOST) and accept the host keys "
                     "(ssh HOST true) before launching")
    return Check("hostfile", OK, summary)


CHECKS = ("logind", "sighup", "kerberos", "disk", "limits", "horovod", "mpi", "hostfile", "gpu")


def _gpu_checks(hostfile, np):
    from hvd_pretrain.supervisor.gpu import gpu_checks  # it imports Check from here
    return gpu_checks(hostfile=hostfile, np=np)


def run_checks(run_dir, hostfile=None, skip=(), np=None):
    """Run every check not in `skip` (the hostfile check only with a hostfile). `gpu` stands for
    the GPU checks of supervisor/gpu.py; np is the number of ranks per host they check."""
    makers = {"logind": check_logind, "sighup": check_sighup, "kerberos": lambda: check_kerberos(run_dir),
              "disk": lambda: check_disk(run_dir), "limits": check_limits, "horovod": check_horovod,
              "mpi": check_mpi, "hostfile": lambda: check_hostfile(hostfile),
              "gpu": lambda: _gpu_checks(hostfile, np)}
    checks = []
    for name in CHECKS:
        if name not in skip and (name != "hostfile" or hostfile):
            made = makers[name]()
            checks += made if isinstance(made, list) else [made]
    return checks


def format_checks(checks):
    lines = []
    for check in checks:
        lines.append("%-5s %-10s %s" % (check.level, check.name, check.message))
        if check.fix and check.level != OK:
            lines.append("%-16s fix: %s" % ("", check.fix))
    failed = sum(c.level == FAIL for c in checks)
    warned = sum(c.level == WARN for c in checks)
    lines.append("%d checks: %d OK, %d WARN, %d FAIL" % (len(checks), len(checks) - failed - warned, warned,
                                                          failed))
    return "\n".join(lines)


def as_dicts(checks):
    return [asdict(c) for c in checks]
