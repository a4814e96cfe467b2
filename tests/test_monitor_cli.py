"""hvd-monitor top / report / tensorboard from the command line."""

import json
import os
import re
import shlex
import time

import pytest

from hvd_pretrain.telemetry import synthetic
from tests.proc import BIN, run
from tests.proc import test_env as proc_env


def _monitor(*args):
    return [os.path.join(BIN, "hvd-monitor")] + [str(a) for a in args]


@pytest.fixture()
def runs(tmp_path):
    root = tmp_path / "runs"
    now = time.time()
    synthetic.write_run(str(root), "np2-live", steps=30, total=100, t0=now - 290, interval=10, slow_rank=1)
    synthetic.write_run(str(root), "np4-failed", steps=12, total=100, world=4, t0=now - 4000, job_state="failed",
                        restarts=2)
    os.makedirs(root / "np2-live" / "tb")
    return root


@pytest.mark.timeout(60)
def test_top_once_prints_one_line_per_run(runs):
    res = run(_monitor("top", "--runs", runs, "--once"), timeout=30)
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["RUN", "STATE", "RST"]
    failed = next(line for line in lines if line.startswith("np4-failed"))
    live = next(line for line in lines if line.startswith("np2-live"))
    assert failed.split()[1] == "failed" and failed.split()[2] == "2"
    assert "12/100" in failed and "12.0%" in failed
    assert live.split()[1] == "running" and "30/100" in live
    assert lines.index(failed) < lines.index(live)  # runs needing attention first
    assert "\033[" not in res.stdout  # no colours when not a terminal
    assert re.search(r"2 run\(s\), 1 need attention", lines[-1])


@pytest.mark.timeout(60)
def test_report_is_one_self_contained_file(runs, tmp_path):
    out = tmp_path / "report.html"
    res = run(_monitor("report", runs / "np2-live", runs / "np4-failed", "-o", out), timeout=60)
    assert "wrote" in res.stdout
    html = out.read_text()
    assert not re.search(r'<(script|link)[^>]+(src|href)=', html)  # nothing loaded from elsewhere
    assert "uPlot" in html and "HVD.RunView" in html
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1))
    names = [r["detail"]["summary"]["name"] for r in data["runs"]]
    assert names == ["np2-live", "np4-failed"]
    live = data["runs"][0]
    assert live["series"]["rows"] == 30 and len(live["series"]["x"]) == 30
    assert live["ranks"]["slowest"]["rank"] == 1
    assert data["runs"][1]["detail"]["summary"]["state"] == "failed"


@pytest.mark.timeout(60)
def test_report_bad_input(tmp_path):
    res = run(_monitor("report", tmp_path / "missing", "-o", tmp_path / "r.html"), timeout=30, check=False)
    assert res.returncode == 2 and "not a run directory" in res.stdout


@pytest.mark.timeout(60)
def test_tensorboard_prints_the_command(runs):
    res = run(_monitor("tensorboard", runs / "np2-live", "--port", "6123"), timeout=30)
    argv = shlex.split(res.stdout.strip())
    assert os.path.basename(argv[0]) == "tensorboard" or argv[1:3] == ["-m", "tensorboard.main"]
    assert argv[argv.index("--logdir") + 1] == str(runs / "np2-live" / "tb")
    assert argv[argv.index("--port") + 1] == "6123"
    os.makedirs(runs / "np4-failed" / "tb")
    res = run(_monitor("tensorboard", runs / "np2-live", runs / "np4-failed"), timeout=30)
    argv = shlex.split(res.stdout.strip())
    spec = argv[argv.index("--logdir_spec") + 1]
    assert spec == "np2-live:%s,np4-failed:%s" % (runs / "np2-live" / "tb", runs / "np4-failed" / "tb")


@pytest.mark.timeout(60)
def test_tensorboard_without_events_is_a_clear_error(tmp_path):
    os.makedirs(tmp_path / "run")
    res = run(_monitor("tensorboard", tmp_path / "run"), timeout=30, check=False)
    assert res.returncode == 2
    assert "has no TensorBoard events" in res.stdout and len(res.stdout.strip().splitlines()) == 1


def _tb_runs(root, names):
    """Run directories with a tb/ holding one (empty) event file each; returns their paths."""
    paths = []
    for name in names:
        tb = root / name / "tb"
        os.makedirs(tb)
        (tb / "events.out.tfevents.1.host").write_bytes(b"")
        paths.append(root / name)
    return paths


@pytest.mark.timeout(60)
def test_tensorboard_spec_names_drop_separators_and_parse_back_exactly(tmp_path):
    from tensorboard.backend.event_processing.data_ingester import _parse_event_files_spec

    paths = _tb_runs(tmp_path / "a:b", ["2026-01-01T10:00", "x:y", "x_y", "plain"])
    res = run(_monitor("tensorboard", *paths), timeout=30)
    argv = shlex.split(res.stdout.strip())
    spec = _parse_event_files_spec(argv[argv.index("--logdir_spec") + 1])
    assert spec == {os.path.realpath(p / "tb"): name
                    for p, name in zip(paths, ["2026-01-01T10_00", "x_y", "x_y_2", "plain"])}


@pytest.mark.timeout(60)
def test_tensorboard_single_run_takes_its_path_literally(tmp_path):
    for name in ("2026-01-01T10:00", "lr=1e-3,bs=32", "it's a run"):
        (path,) = _tb_runs(tmp_path, [name])
        res = run(_monitor("tensorboard", path), timeout=30)
        argv = shlex.split(res.stdout.strip())
        assert argv[argv.index("--logdir") + 1] == str(path / "tb")
        assert "--logdir_spec" not in argv


@pytest.mark.timeout(90)
def test_tensorboard_paths_with_commas_go_through_a_stable_link_directory(tmp_path):
    from tensorboard.backend.event_processing import io_wrapper

    paths = _tb_runs(tmp_path / "runs", ["lr=1e-3,bs=32", "2026-01-01T10:00", "plain"])
    env = proc_env(XDG_CACHE_HOME=tmp_path / "cache")
    outputs = [run(_monitor("tensorboard", *paths), timeout=30, env=env).stdout.strip() for _ in range(2)]
    assert outputs[0] == outputs[1]
    argv = shlex.split(outputs[0])
    assert "--logdir_spec" not in argv
    links = argv[argv.index("--logdir") + 1]
    assert links.startswith(str(tmp_path / "cache" / "hvd-pretrain" / "tensorboard"))
    found = sorted(os.path.realpath(d) for d in io_wrapper.GetLogdirSubdirectories(links))
    assert found == sorted(os.path.realpath(p / "tb") for p in paths)
    assert sorted(os.listdir(links)) == ["2026-01-01T10_00", "lr=1e-3_bs=32", "plain"]


@pytest.mark.timeout(60)
def test_tensorboard_comma_path_without_a_link_directory_is_one_line_exit_2(tmp_path):
    paths = _tb_runs(tmp_path / "runs", ["lr=1e-3,bs=32", "plain"])
    (tmp_path / "cache").write_text("not a directory")
    res = run(_monitor("tensorboard", *paths), timeout=30, check=False,
              env=proc_env(XDG_CACHE_HOME=tmp_path / "cache"))
    assert res.returncode == 2
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and str(paths[0] / "tb") in lines[0] and "comma" in lines[0]
