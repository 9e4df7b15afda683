"""Executors of `arreg prepare`: a local worker killed with kill -9 is
noticed at once and its run retried from its checkpoint (or one line names it); the smoke
profile through a two-node Ray cluster on loopback gives the local executor's metrics; a Ray
task killed mid-run is retried and resumes; a node that does not see the run store says so."""

import ipaddress
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from arreg_core import executors
from arreg_core.analysis import result_differences
from arreg_core.executors import ExecutorError, Job, LocalExecutor, RayExecutor, StoreNotSharedError
from arreg_core.experiments import prepare_profile
from arreg_core.profiles import load_profile
from arreg_core.runs import load_run, read_json, run_path


def tiny_job(runs_dir, epochs=6, eps=4, pieces=()):
    config = load_profile("smoke", eps=[eps], epochs=epochs, n_train=100, n_test=50).configs["ar_sweep"][0]
    return Job(config, str(runs_dir), device="cpu", pieces=pieces)


def kill_when_checkpointed(job, find_pid, sig=signal.SIGKILL, timeout=240):
    """In a thread: once the job's run has a finished epoch, kill -9 the process find_pid() names.
    Returns the thread and a dict that gets the kill's time."""
    record = run_path(job.config, job.runs_dir) / "checkpoint.json"
    info = {}

    def watch():
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if record.exists() and read_json(record)["epoch"] >= 1:
                pid = find_pid()
                if pid is not None:
                    os.kill(pid, sig)
                    info.update(time=time.monotonic(), pid=pid, epoch=read_json(record)["epoch"])
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, info


def spawned_worker():
    """The pid of this process's one multiprocessing worker (the local executor's)."""
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmdline:
            return child.pid
    return None


def test_local_worker_killed_mid_run_is_retried_and_resumes(tmp_path, capsys):
    job = tiny_job(tmp_path)
    watcher, kill = kill_when_checkpointed(job, spawned_worker)
    (result,) = LocalExecutor(workers=2, retries=1).map([job])
    watcher.join()
    assert kill, "the worker was never killed mid-run"
    assert kill["epoch"] < job.config.epochs
    assert result["run"] == job.name and result["resumed_from"] >= 1
    run = load_run(run_path(job.config, tmp_path))
    assert [row["epoch"] for row in run.history] == list(range(1, job.config.epochs + 1))
    out = capsys.readouterr().out
    assert f"the worker training {job.name} killed by SIGKILL" in out and "retrying it from epoch" in out


def test_local_worker_killed_beyond_its_retries_stops_with_one_line_naming_the_run(tmp_path):
    job = tiny_job(tmp_path)
    watcher, kill = kill_when_checkpointed(job, spawned_worker)
    with pytest.raises(ExecutorError) as err:
        LocalExecutor(workers=2, retries=0).map([job])
    noticed = time.monotonic()
    watcher.join()
    assert kill and noticed - kill["time"] < 5, "the dead worker was not noticed within seconds"
    message = str(err.value)
    assert "\n" not in message and job.name in message and "SIGKILL" in message
    assert spawned_worker() is None  # no worker left behind


DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_executors import tiny_job
from arreg_core.executors import LocalExecutor
LocalExecutor(workers=2).map([tiny_job(Path({runs!r}), epochs=200)])
"""


def test_local_workers_exit_when_their_driver_is_killed(tmp_path):
    """kill -9 of `arreg prepare` (no clean-up runs) leaves no worker training on: each exits
    within seconds, and its run keeps its last checkpoint to resume from."""
    import subprocess
    import sys

    driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(tests=str(Path(__file__).parent), runs=str(tmp_path))])
    job = tiny_job(tmp_path, epochs=200)

    def worker_of_driver():
        for child in psutil.Process(driver.pid).children(recursive=True):
            if "spawn_main" in " ".join(child.cmdline()):
                return child
        return None

    record = run_path(job.config, tmp_path) / "checkpoint.json"
    end = time.monotonic() + 240
    while not (record.exists() and read_json(record)["epoch"] >= 1) and time.monotonic() < end:
        time.sleep(0.05)
    worker = worker_of_driver()
    assert worker is not None, "the driver never started a worker that checkpointed"
    driver.kill()
    driver.wait()
    gone, alive = psutil.wait_procs([worker], timeout=10)
    assert not alive, "a worker went on training after its driver was killed"
    epoch = read_json(record)["epoch"]
    time.sleep(1.5)
    assert read_json(record)["epoch"] == epoch < 200  # nothing trains on; the run resumes from here


def test_executor_flags_are_checked():
    assert isinstance(executors.make_executor("local", 3), LocalExecutor)
    ray_exec = executors.make_executor("ray", 2, "auto", 0.25, 4)
    assert (ray_exec.address, ray_exec.gpus_per_run, ray_exec.cpus_per_run) == ("auto", 0.25, 4)
    with pytest.raises(ValueError, match="--gpus-per-run only with --executor ray"):
        executors.make_executor("local", 2, gpus_per_run=1)
    with pytest.raises(ValueError, match="--cpus-per-run must be positive"):
        executors.make_executor("ray", cpus_per_run=0)
    with pytest.raises(ValueError, match="--gpus-per-run above 1 must be whole"):
        executors.make_executor("ray", gpus_per_run=1.5)
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        executors.make_executor("local", 0)


def test_prepare_and_book_take_the_executor_flags(capsys):
    from arreg_core.cli import build_parser, main

    for command in ("prepare", "book"):
        args = build_parser().parse_args([command, "--profile", "smoke", "--executor", "ray", "--address", "auto",
                                          "--gpus-per-run", "0.5", "--cpus-per-run", "2"])
        assert (args.executor, args.address, args.gpus_per_run, args.cpus_per_run) == ("ray", "auto", 0.5, 2.0)
        assert main([command, "--profile", "smoke", "--cpus-per-run", "2"]) == 2
        assert capsys.readouterr().err.strip() == "arreg: error: --cpus-per-run only with --executor ray"


# --- Ray: a local cluster of two simulated nodes, every process on 127.0.0.1 --------------------


@pytest.fixture(scope="module")
def ray_cluster():
    """Two simulated nodes of one CPU each; Ray's processes on 127.0.0.1 only. Without Ray (the
    `cluster` extra) skipped, except in CI, where `make test` installs it."""
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed: `make test` installs the `cluster` extra")
        pytest.skip("Ray is not installed: pip install -e '.[cluster]'")

    saved = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), ray._private.ray_constants.ENABLE_RAY_CLUSTER
    executors.use_loopback(ray)
    node = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False,
            "object_store_memory": 80 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args=dict(node))
    cluster.add_node(**node)
    ray.init(address=cluster.address, include_dashboard=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    if saved[0] is None:
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    else:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved[0]
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = saved[1]


def listening_addresses_of_this_process_tree() -> dict[str, set[str]]:
    """{process name: the IPs it listens on (TCP)}, for this process and all it started."""
    procs = {p.pid: p for p in [psutil.Process(), *psutil.Process().children(recursive=True)]}
    out: dict[str, set[str]] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in procs:
            out.setdefault(procs[conn.pid].name(), set()).add(conn.laddr.ip)
    return out


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.is_loopback or (address.version == 6 and address.ipv4_mapped is not None
                                   and address.ipv4_mapped.is_loopback)


def test_ray_cluster_listens_on_loopback_only(ray_cluster):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    listening = listening_addresses_of_this_process_tree()
    assert {"gcs_server", "raylet"} <= set(listening), listening  # the check sees Ray's processes
    assert all(is_loopback(ip) for ips in listening.values() for ip in ips), listening


def test_smoke_profile_through_ray_matches_the_local_executor(ray_cluster, tmp_path, capsys):
    """The FGSM experiment of `smoke` (two runs, margins and spectrum) on two Ray nodes: the same
    runs, metrics and artifacts as the local executor (one torch thread each, like a worker)."""
    grid = dict(experiments=("fgsm",), fgsm_eps=[4, 8], seeds=[0], epochs=2, n_train=100, n_test=50, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = prepare_profile("smoke", runs_dir=tmp_path / "local", executor=LocalExecutor(1), **grid)
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    remote = prepare_profile("smoke", runs_dir=tmp_path / "ray", executor=RayExecutor(cpus_per_run=1), **grid)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[arreg prepare]")]
    assert sorted(remote) == sorted(local) and len(local) == 2
    for name in local:
        assert len(list((tmp_path / "local" / name).rglob("*.npz"))) == 2  # margins and spectrum
        # the same metrics but train_seconds, every array equal, the same meta but the checkpoint's hash
        differences, arrays = result_differences(tmp_path / "local" / name, tmp_path / "ray" / name)
        assert differences == [] and arrays > 2, (name, differences)
    assert len(lines) == 2 and all(re.search(r" \d+\.\d s  on \S+ \(127\.0\.0\.1, node [0-9a-f]{8}\)", line)
                                   for line in lines), lines
    assert len({re.search(r"node ([0-9a-f]{8})", line).group(1) for line in lines}) == 2, "one node idle"
    assert not list((tmp_path / "ray").glob(".arreg-store-check-*"))


def ray_task_worker():
    """The pid of the Ray worker running an arreg-run task (its process title)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("ray::arreg-run"):
            return proc.pid
    return None


def test_ray_task_killed_mid_run_is_retried_and_resumes(ray_cluster, tmp_path):
    job = tiny_job(tmp_path, epochs=6)
    watcher, kill = kill_when_checkpointed(job, ray_task_worker)
    (result,) = RayExecutor(max_retries=2).map([job])
    watcher.join()
    assert kill, "the Ray task was never killed mid-run"
    assert result["resumed_from"] >= 1
    run = load_run(run_path(job.config, tmp_path))
    assert [row["epoch"] for row in run.history] == list(range(1, job.config.epochs + 1))


def test_ray_node_that_does_not_see_the_store_fails_with_one_line(ray_cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "write_store_marker", lambda path, token: None)  # as if on a node's own disk
    job = tiny_job(tmp_path, epochs=1)
    with pytest.raises(StoreNotSharedError) as err:
        RayExecutor().map([job])
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "does not see the run store" in message
    assert not run_path(job.config, tmp_path).exists()  # nothing was trained


def test_store_build_log_adds_up_wall_time_over_interrupted_invocations(tmp_path, capsys):
    """`prepare_profile` logs its start, each finished run and its end in the store
    (runs.PREPARE_LOG); an invocation killed before its end line counts up to its last run, so the
    from-empty wall time of a store built over several sessions adds up. The log does not make
    the store unrecognisable to `--fresh`."""
    from arreg_core.runs import PREPARE_LOG, is_run_store

    grid = dict(experiments=("fgsm",), fgsm_eps=[4], seeds=[0], epochs=1, n_train=60, n_test=30, device="cpu")
    done = prepare_profile("smoke", runs_dir=tmp_path, executor=LocalExecutor(1), **grid)
    log = tmp_path / PREPARE_LOG
    lines = log.read_text()
    prepare_profile("smoke", runs_dir=tmp_path, executor=LocalExecutor(1), **grid)  # nothing to do: no log lines
    assert log.read_text() == lines
    with open(log, "a") as f:  # a second invocation that found its run (written as prepare writes it)
        f.write('{"event": "start", "cpu_model": "%s", "elapsed_s": 0.0}\n'
                '{"event": "run", "run": "y", "found": true, "elapsed_s": 0.5}\n{"event": "end", "elapsed_s": 0.6}\n'
                % executors.cpu_model())
    with open(log, "a") as f:  # a third invocation, killed after one run and a heartbeat (no end line), cut
        f.write('{"event": "start", "cpu_model": "Other CPU", "elapsed_s": 0.0}\n'
                '{"event": "run", "run": "x", "found": false, "elapsed_s": 10.0}\n'
                '{"event": "alive", "elapsed_s": 12.5}\n{"event": "ru')
    wall = executors.store_wall_time(log)
    first, second, killed = wall["sessions"]
    assert first["trained"] == 1 and first["found"] == 0 and first["ended"] and first["wall_s"] > 0
    assert second["trained"] == 0 and second["found"] == 1 and second["ended"]
    assert killed == {"date": None, "cpu_model": "Other CPU", "wall_s": 12.5, "trained": 1, "found": 0, "ended": False}
    assert wall["wall_s"] == pytest.approx(first["wall_s"] + second["wall_s"] + 12.5, abs=0.11)
    assert wall["trained"] == 2 and executors.cpu_model() in wall["cpu_models"] and "Other CPU" in wall["cpu_models"]
    assert is_run_store(tmp_path) and done == [p.name for p in tmp_path.iterdir() if p.is_dir()]
    from arreg_core.cli import main

    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert f"built by `arreg prepare` in 3 invocations: {wall['wall_s'] / 3600:.2f} h wall in all, 2 runs trained" \
        in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown experiments"):
        prepare_profile("smoke", runs_dir=tmp_path, experiments=("ar-sweep",))


def test_progress_log_has_a_heartbeat(tmp_path):
    progress = executors.Progress(3, log=tmp_path / "log.jsonl", heartbeat_s=0.05)
    time.sleep(0.3)
    progress.close()
    events = [json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "end" and events.count("alive") >= 2


def test_a_run_another_prepare_finished_while_this_one_waited_is_found_not_trained(tmp_path, monkeypatch):
    """Two overlapping `arreg prepare` on one store: the second waits for the run's lock, then finds
    the run finished; its build log says found, so the store's trained runs are not counted twice."""
    import contextlib

    from arreg_core import runs

    job = tiny_job(tmp_path, epochs=1)
    real_lock = runs.run_lock

    @contextlib.contextmanager
    def the_other_prepare_trains_it_first(path, timeout=None):
        monkeypatch.setattr(runs, "run_lock", real_lock)
        runs.get_or_train(job.config, job.runs_dir, device="cpu", progress=False)
        with real_lock(path, timeout):
            yield

    monkeypatch.setattr(runs, "run_lock", the_other_prepare_trains_it_first)
    result = executors.run_job(job)
    assert result["found"] and result["resumed_from"] == 0
    log = tmp_path / "log.jsonl"
    progress = executors.Progress(1, log=log)
    progress.done(result)
    progress.close()
    assert executors.store_wall_time(log)["trained"] == 0
