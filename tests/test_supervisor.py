"""Supervisor building blocks without processes: exit meaning, heartbeat, logind, launcher choice, doctor parsing."""

import os

import pytest

from hvd_pretrain.rundir import append_jsonl
from hvd_pretrain.supervisor import doctor, launch, logind, outcome
from hvd_pretrain.supervisor.heartbeat import Heartbeat
from hvd_pretrain.supervisor.names import JobNameError, run_dir_for, safe_token, validate_name

HOROVOD_TAIL = """[0]<stderr>:FATAL Flags parsing error: Unknown command line flag 'bogus_flag'
[0]<stderr>:Pass --helpshort or --helpfull to see help on flags.
Traceback (most recent call last):
  File "/venv/bin/horovodrun", line 8, in <module>
RuntimeError: Horovod detected that one or more processes exited with non-zero status, thus causing the job to be terminated. The first process to do so was:
Process name: 0
Exit code: 2
""".splitlines()

MPIRUN_TAIL = """[1,1]<stderr>:tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor
--------------------------------------------------------------------------
Primary job  terminated normally, but 1 process returned
a non-zero exit code. Per user-direction, the job has been aborted.
--------------------------------------------------------------------------
mpirun detected that one or more processes exited with non-zero status, thus causing
the job to be terminated. The first process to do so was:

  Process name: [[4023,1],1]
  Exit code:    1
""".splitlines()


def test_launcher_exit_codes_are_unwrapped():
    assert outcome.effective_code(1, HOROVOD_TAIL) == 2
    assert outcome.is_config_error(outcome.effective_code(1, HOROVOD_TAIL))
    assert outcome.effective_code(1, MPIRUN_TAIL) == 1
    assert outcome.effective_code(0, HOROVOD_TAIL) == 0
    assert outcome.effective_code(-9, ["no launcher here"]) == -9
    assert outcome.describe_code(-9) == "killed by SIGKILL"
    assert outcome.describe_code(143) == "exit code 143 (SIGTERM)"


def test_error_line_prefers_the_ranks_own_message():
    assert outcome.error_line(HOROVOD_TAIL) == "FATAL Flags parsing error: Unknown command line flag 'bogus_flag'"
    assert outcome.error_line(MPIRUN_TAIL).startswith("tensorflow.python.framework.errors_impl.ResourceExhausted")
    assert outcome.error_line(["all fine", "step 3"]) is None
    rank_failure = ["[0]<stderr>:    raise ValueError(", "[0]<stderr>:ValueError: Received incompatible tensor",
                    "[0]<stderr>:error: rank 0 failed: ValueError: Received incompatible tensor",
                    "[1]<stderr>:rank 1: stopping because another rank failed (its error is reported above)"]
    assert outcome.error_line(rank_failure) == "error: rank 0 failed: ValueError: Received incompatible tensor"
    assert outcome.error_line(rank_failure[:2] + rank_failure[3:]) == "ValueError: Received incompatible tensor"


def test_heartbeat_stall_and_startup(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    append_jsonl(path, {"time": 0, "step": 50})  # an earlier attempt: ignored
    hb = Heartbeat(path)
    hb.start(now=100.0)
    assert hb.stalled(10, 30, now=120.0) is None  # still in the startup allowance
    assert "startup timeout" in hb.stalled(10, 30, now=131.0)
    hb.start(now=100.0)
    append_jsonl(path, {"time": 1, "step": 40, "event": "resume"})
    assert not hb.poll(now=110.0) and hb.stalled(10, 30, now=125.0) is None  # the first step is still startup
    append_jsonl(path, {"time": 2, "step": 41})
    assert hb.poll(now=132.0) and hb.first_step == 41
    append_jsonl(path, {"time": 3, "step": 41, "event": "checkpoint"})
    assert not hb.poll(now=140.0)  # the same step again is no progress
    assert hb.stalled(10, 30, now=141.0) is None
    reason = hb.stalled(10, 30, now=142.5)
    assert reason.startswith("hang: step 41 did not advance for 10s")
    with open(path, "a") as f:
        f.write('{"step": 42, "ti')  # a write in progress is not read yet
    assert not hb.poll(now=143.0)
    with open(path, "a") as f:
        f.write('me": 3}\n')
    assert hb.poll(now=144.0) and hb.last_step == 42 and hb.stalled(10, 30, now=150.0) is None


@pytest.mark.parametrize("name", ["a b", "it's", 'say "hi"', "x;rm -rf y", "$(touch z)", "`id`", "ünï"])
def test_names_with_shell_characters_are_kept_literally(name, tmp_path):
    assert validate_name(name) == name
    assert run_dir_for(name, str(tmp_path)) == os.path.join(str(tmp_path), name)
    token = safe_token(name)
    assert token.startswith("hvd-job-") and all(c.isalnum() or c in "-_" for c in token)


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "x..y", "/abs", "", "-f", "a\nb"])
def test_bad_names_are_rejected(name):
    with pytest.raises(JobNameError):
        validate_name(name)


def _facts(tmp_path, conf, cgroup, linger, user="alice", systemd_run=True):
    (tmp_path / "logind.conf").write_text(conf)
    (tmp_path / "cgroup").write_text(cgroup)
    f = logind.facts(user=user, conf_globs=(str(tmp_path / "logind.conf"),), cgroup_path=str(tmp_path / "cgroup"),
                     loginctl=lambda args: None)  # no running manager: the config files decide
    f.linger, f.systemd_run = linger, systemd_run
    return f


SESSION = "0::/user.slice/user-1000.slice/session-7.scope\n"
SERVICE = "0::/system.slice/slurmd.service\n"


def test_logind_facts_from_config_and_cgroup(tmp_path):
    f = _facts(tmp_path, "[Login]\nKillUserProcesses=yes\n", SESSION, linger=False)
    assert f.kill_source == str(tmp_path / "logind.conf")
    assert f.kill_user_processes is True and f.session_scope == "session-7.scope" and f.at_risk
    assert not _facts(tmp_path, "[Login]\nKillUserProcesses=yes\n", SERVICE, linger=False).at_risk
    assert not _facts(tmp_path, "[Login]\nKillUserProcesses=no\n", SESSION, linger=False).at_risk
    excluded = _facts(tmp_path, "[Login]\nKillUserProcesses=yes\nKillExcludeUsers=root alice\n", SESSION, False)
    assert excluded.kills_this_user is False and not excluded.at_risk


def test_running_manager_overrides_the_config_files(tmp_path):
    (tmp_path / "logind.conf").write_text("[Login]\nKillUserProcesses=yes\n")
    answers = {"show-session": {"KillUserProcesses": "no", "KillExcludeUsers": "root"},
               "show-user": {"Linger": "yes"}}
    f = logind.facts(user="alice", conf_globs=(str(tmp_path / "logind.conf"),), cgroup_path="/nonexistent",
                     loginctl=lambda args: answers[args[0]])
    assert f.kill_source == "loginctl" and f.kill_user_processes is False and f.linger is True


def test_launcher_choice_follows_logind(tmp_path):
    kill = "[Login]\nKillUserProcesses=yes\n"
    assert launch.choose_launcher("auto", _facts(tmp_path, "[Login]\n", SESSION, False)) == "direct"
    assert launch.choose_launcher("auto", _facts(tmp_path, kill, SESSION, True)) == "systemd"
    assert launch.choose_launcher("tmux", _facts(tmp_path, kill, SESSION, True)) == "tmux+systemd"
    with pytest.raises(launch.StartError, match="loginctl enable-linger alice"):
        launch.choose_launcher("auto", _facts(tmp_path, kill, SESSION, False))
    with pytest.raises(launch.StartError, match="systemd-run is not installed"):
        launch.choose_launcher("auto", _facts(tmp_path, kill, SESSION, True, systemd_run=False))
    assert launch.choose_launcher("direct", _facts(tmp_path, kill, SESSION, False)) == "direct"
    check = doctor.check_logind(_facts(tmp_path, kill, SESSION, False))
    assert check.level == doctor.FAIL and "loginctl enable-linger alice" in check.fix


def test_doctor_parsers(tmp_path):
    build = doctor.parse_check_build("""Horovod v0.28.1:

Available Frameworks:
    [X] TensorFlow
    [ ] PyTorch
    [ ] MXNet

Available Controllers:
    [X] MPI
    [X] Gloo

Available Tensor Operations:
    [ ] NCCL
    [ ] DDL
    [ ] CCL
    [X] MPI
    [X] Gloo
""")
    assert build == {"frameworks": ["TensorFlow"], "controllers": ["MPI", "Gloo"], "operations": ["MPI", "Gloo"]}
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nSigIgn:\t0000000000001001\n")
    assert doctor.sighup_ignored(str(status)) is True
    status.write_text("Name:\tpython\nSigIgn:\t0000000000001000\n")
    assert doctor.sighup_ignored(str(status)) is False
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\nfiler:/home /home nfs4 rw,sec=krb5 0 0\n")
    assert doctor.mount_of("/home/alice/runs", str(mounts))[1] == "nfs4"
    assert doctor.mount_of("/tmp/x", str(mounts))[1] == "ext4"
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# cluster\nnode1 slots=8\nnode2:8\n\nnode1 slots=8\n")
    assert doctor.parse_hostfile(str(hostfile)) == ["node1", "node2"]


def test_doctor_checks_on_this_machine(tmp_path):
    disk = doctor.check_disk(str(tmp_path / "runs" / "x"), warn_gib=0, fail_gib=0)
    assert disk.level == doctor.OK and "GiB free" in disk.message
    tight = doctor.check_limits(min_nofile=10 ** 9, min_nproc=1)
    assert tight.level == doctor.WARN and "ulimit -n" in tight.fix
    assert doctor.check_kerberos(str(tmp_path)).level in (doctor.OK, doctor.WARN, doctor.FAIL)


@pytest.mark.timeout(60)
def test_hvd_job_imports_neither_tensorflow_nor_horovod():
    import proc
    code = ("import sys, hvd_pretrain.cli.job, hvd_pretrain.supervisor.supervise, hvd_pretrain.supervisor.doctor; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'horovod', 'tf_keras')); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc.run([proc.sys.executable, "-c", code], timeout=50)
    help_text = proc.run([os.path.join(proc.BIN, "hvd-job"), "--help"], timeout=50).stdout
    assert "start" in help_text and "doctor" in help_text
