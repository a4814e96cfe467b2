"""Signal a whole process tree, even the parts that left its process group.

`horovodrun` starts each rank through a helper that calls setsid(), and mpirun's
daemons do similar things, so a single killpg() on the launcher's group does not
reach every rank. The supervisor therefore (1) becomes a child subreaper, so
ranks orphaned by a dying launcher are re-parented to it instead of to init, and
(2) signals every process group found among its descendants.
"""

import ctypes
import os
import signal
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Ask Linux to re-parent orphaned descendants to this process. Returns True on success."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(keep=()):
    """Collect exit statuses of re-parented orphans; pids in `keep` (our Popen children) are left to Popen."""
    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError, OSError):
            pass


def descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def tree_groups(root_pid, extra_pgids=()):
    """Process-group ids of `root_pid`, all its descendants, and `extra_pgids` (skipping our own group)."""
    own = os.getpgrp()
    groups = set(p for p in extra_pgids if p)
    procs = descendants(root_pid)
    try:
        procs.append(psutil.Process(root_pid))
    except psutil.Error:
        pass
    for proc in procs:
        try:
            groups.add(os.getpgid(proc.pid))
        except OSError:
            pass
    groups.discard(own)
    return sorted(groups), procs


def signal_tree(root_pid, sig, extra_pgids=()):
    """Send `sig` to every process group of the tree under `root_pid` and to each process in it.

    Returns the number of processes signalled. Groups are signalled first (the
    documented "whole process group" behaviour), then single processes that sit in
    our own group (never signalled as a group, it holds the caller).
    """
    groups, procs = tree_groups(root_pid, extra_pgids)
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    count = 0
    own = os.getpgrp()
    for proc in procs:
        try:
            if os.getpgid(proc.pid) == own and proc.pid != os.getpid():
                proc.send_signal(sig)
            count += 1
        except (OSError, psutil.Error):
            pass
    return count


def group_alive(pgid):
    """True if any process is left in process group `pgid`."""
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def pid_alive(pid):
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_with_env(name, value):
    """Live processes whose environment has name=value (how leftovers of a job are found)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid == os.getpid():
                continue
            if proc.environ().get(name) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _running(proc):
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_leftovers(env_name, value, pgids=(), grace=2.0):
    """SIGTERM then SIGKILL every process tagged with env_name=value and every group in `pgids`."""
    pgids = [g for g in pgids if g]
    procs = processes_with_env(env_name, value)
    for pgid in pgids:
        if group_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGTERM)
            except OSError:
                pass
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and (any(_running(p) for p in procs) or any(group_alive(g) for g in pgids)):
        time.sleep(0.1)
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for proc in processes_with_env(env_name, value):
        try:
            proc.kill()
        except psutil.Error:
            pass
    return len(procs)
