"""Run processes from tests so that nothing outlives the test.

Every child starts in its own session (process group). On timeout, failure or
test exit the whole group is killed with SIGKILL, so a hung MPI rank can never
stall the suite.
"""

import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def test_env(**extra):
    env = dict(os.environ)
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def kill_group(popen):
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run(cmd, timeout, env=None, cwd=None, check=True, input_text=None):
    """Run `cmd` to completion within `timeout` seconds; return CompletedProcess.

    With check=True a non-zero exit fails the test, showing the output tail.
    """
    popen = subprocess.Popen(
        cmd, cwd=cwd or REPO, env=env or test_env(), start_new_session=True,
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = popen.communicate(input=input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(popen)
        out, _ = popen.communicate()
        raise AssertionError("timed out after %ss: %s\n--- output tail ---\n%s"
                             % (timeout, " ".join(map(str, cmd)), (out or "")[-6000:]))
    except BaseException:
        kill_group(popen)
        popen.communicate()
        raise
    finally:
        kill_group(popen)
    result = subprocess.CompletedProcess(cmd, popen.returncode, out, "")
    if check and popen.returncode != 0:
        raise AssertionError("exit %d: %s\n--- output tail ---\n%s"
                             % (popen.returncode, " ".join(map(str, cmd)), out[-6000:]))
    return result


class Background:
    """A process group running in the background; killed when the block exits."""

    def __init__(self, cmd, log_path, env=None, cwd=None):
        self.log = open(log_path, "w")
        self.popen = subprocess.Popen(cmd, cwd=cwd or REPO, env=env or test_env(), start_new_session=True,
                                      stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.log_path = log_path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        kill_group(self.popen)
        self.popen.wait()
        self.log.close()

    def wait(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            rc = self.popen.poll()
            if rc is not None:
                return rc
            time.sleep(0.2)
        raise AssertionError("still running after %ss; log tail:\n%s" % (timeout, self.output()[-6000:]))

    def output(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()
