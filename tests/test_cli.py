import json
import subprocess
import sys

import pytest

from arreg_core.cli import build_parser, config_from_args, main


def test_every_config_field_is_a_flag():
    args = build_parser().parse_args(["train", "--dataset", "synthetic", "--eps", "4", "--milestones", "3", "5",
                                      "--spectral-norm", "none", "--augment", "false", "--n-train", "100"])
    config = config_from_args(args)
    assert (config.dataset, config.eps, config.milestones, config.spectral_norm, config.augment, config.n_train) == \
        ("synthetic", 4.0, (3, 5), None, False, 100)



def test_the_eps_flags_say_their_scale(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--eps EPS", "--attack-step ATTACK_STEP"):
        assert f"{flag} default: " in text and "(0-255 scale" in text.split(f"{flag} default: ")[1][:40]
    assert "(0-255 scale" not in text.split("--attack-steps ATTACK_STEPS default: ")[1][:40]

def test_train_then_list(tmp_path, capsys):
    flags = ["--dataset", "synthetic", "--arch", "resnet8", "--n-train", "100", "--n-test", "50", "--epochs", "1",
             "--batch-size", "50", "--eps", "0", "--runs-dir", str(tmp_path), "--device", "cpu", "--quiet"]
    assert main(["train", *flags]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["epochs_trained"] == 1
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "resnet8-synthetic-none-eps0" in listing and "done" in listing


def test_config_file_with_flag_override(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"dataset": "synthetic", "arch": "resnet8", "epochs": 1, "n_train": 100,
                               "n_test": 50, "batch_size": 50, "eps": 4}))
    args = build_parser().parse_args(["train", "--config", str(cfg), "--eps", "16"])
    assert config_from_args(args).eps == 16


@pytest.mark.parametrize("flags, fix", [
    (["--dataset", "imagenet"], "choose one of"),
    (["--arch", "vgg"], "choose one of"),
    (["--eps", "-8"], "eps must be >= 0"),
    (["--dataset", "cifar10-jpeg", "--data-root", "/nonexistent/folder"], "ARREG_DATA"),
])
def test_bad_input_is_a_one_line_error_naming_the_fix(flags, fix, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "arreg_core.cli", "train", "--runs-dir", str(tmp_path), *flags],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arreg: error:") and fix in lines[0], proc.stderr


def test_analyze_computes_then_reuses(tmp_path, capsys):
    flags = ["--dataset", "synthetic", "--arch", "resnet8", "--n-train", "100", "--n-test", "50", "--epochs", "1",
             "--batch-size", "50", "--eps", "0", "--runs-dir", str(tmp_path), "--device", "cpu", "--quiet"]
    assert main(["train", *flags]) == 0
    run_dir = capsys.readouterr().out.splitlines()[0]
    analyze = ["analyze", run_dir, "--pieces", "margins", "bound", "--device", "cpu",
               "--set", "bound.n_examples=4", "--set", "bound.steps=2", "--set", "bound.bisect_steps=1"]
    assert main(analyze) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["margins", "computed"], ["bound", "computed"]]
    assert main(analyze) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == ["reused", "reused"]
    assert main(["analyze", run_dir, "--pieces", "bound", "--set", "bound.radius=1"]) == 2
    assert "unknown params" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["analyze", run_dir, "--set", "n_examples"])


# ----------------------------------------------------------------------------- one line, never a traceback

import errno
import os
from pathlib import Path

from arreg_core import io as arreg_io, runs

TINY = ["--dataset", "synthetic", "--arch", "resnet8", "--n-train", "50", "--n-test", "20", "--epochs", "2",
        "--milestones", "1", "--batch-size", "50", "--eps", "8", "--attack-steps", "1", "--attack-step", "8",
        "--device", "cpu", "--quiet"]


def one_line_error(argv, capsys) -> str:
    """Run the CLI in this process; it must exit non-zero with exactly one line on stderr."""
    try:
        rc = main(argv)
    except SystemExit as exit_:
        rc = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc not in (0, None) and len(err) == 1 and err[0].startswith("arreg: error: "), err
    return err[0]


@pytest.mark.parametrize("argv, says", [
    (["train", "--n-train", "abc"], "integer expected, got 'abc'"),
    (["train", "--augment", "yes"], "true or false expected, got 'yes'"),
    (["train", "--device", "tpu", *TINY[:-3]], "unknown device 'tpu'"),
    (["train", "--eps", "nan"], "at most 255"),
    (["train", "--lr", "-1"], "lr must be a number > 0"),
    (["train", "--epochs", "4", "--milestones", "5"], "milestones must be sorted epochs in 1..3"),
    (["train", "--method", "pgd", "--attack-steps", "0"], "attack_steps >= 1"),
    (["prepare", "--device", "tpu"], "unknown device 'tpu'"),
    (["prepare", "--workers", "two"], "integer expected"),
    (["book", "--profile", "smoke", "-p", "eps=abc"], "-p eps: 'abc' is not a number"),
    (["book", "--profile", "smoke", "-p", "eps=[2,"], "-p eps='[2,' is not a list"),
    (["book", "--profile", "smoke", "-p", "epochs=2.5"], "epochs must be an integer, got 2.5"),
    (["book", "--profile", "smoke", "-p", "device=cpu"], "machine's settings"),
    (["book", "--profile", "smoke", "-p", "bogus=1"], "unknown parameters ['bogus']"),
    (["analyze", "/nonexistent/run"], "not a finished run"),
])
def test_user_errors_are_one_line(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert says in one_line_error(argv, capsys)
    assert list(tmp_path.iterdir()) == []  # and nothing was created


def test_cuda_without_a_gpu_is_one_line(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("ARREG_RUNS", str(tmp_path / "store"))
    monkeypatch.setenv("ARREG_DEVICE", "tpu")
    assert "unknown device 'tpu'" in one_line_error(["book", "--profile", "smoke"], capsys)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "no CUDA GPU" in one_line_error(["train", *TINY, "--device", "cuda", "--runs-dir", str(tmp_path)], capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, says", [
    ("[1, 2]", "must hold a JSON object of TrainConfig fields"),
    ('{"eps": "8"}', "eps must be a number, got '8' (a string"),
    ('{"eps": 8,', "is not valid JSON at line 1"),
    ('{"epochs": 2.5}', "epochs must be an integer, got 2.5"),
])
def test_config_file_errors_name_the_file(content, says, tmp_path, capsys):
    cfg = tmp_path / "my-config.json"
    cfg.write_text(content)
    line = one_line_error(["train", "--config", str(cfg)], capsys)
    assert str(cfg) in line and says in line


def test_debug_shows_the_traceback(monkeypatch):
    with pytest.raises(ValueError, match="unknown device"):
        main(["train", "--device", "tpu", "--debug"])
    monkeypatch.setenv("ARREG_DEBUG", "1")
    with pytest.raises(ValueError, match="unknown device"):
        main(["train", "--device", "tpu"])


def test_disk_full_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    real_fsync = os.fsync
    calls = []

    def fsync(fd):  # the disk fills up in the middle of the second epoch's checkpoint
        calls.append(fd)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    line = one_line_error(["train", *TINY, "--runs-dir", str(tmp_path)], capsys)
    assert "no space left on device" in line and "resumes from its last finished epoch" in line
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(["train", *TINY, "--runs-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["epochs_trained"] == 2


def _unwritable(folder: Path, monkeypatch, code: int) -> None:
    """Make `folder` unwritable: chmod where that binds (not as root), else mkdir and mkstemp
    fail with `code` as a read-only or forbidden folder makes them."""
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anyway: inject the same error
        folder.chmod(0o755)

        def refuse(*a, **k):
            raise OSError(code, os.strerror(code), str(folder))

        monkeypatch.setattr(arreg_io.tempfile, "mkstemp", refuse)
        monkeypatch.setattr(Path, "mkdir", refuse)


@pytest.mark.parametrize("code, says", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")])
def test_unwritable_store_is_one_line(code, says, tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    _unwritable(store, monkeypatch, code)
    try:
        line = one_line_error(["train", *TINY, "--runs-dir", str(store)], capsys)
    finally:
        store.chmod(0o755)
    if code == errno.EACCES:
        assert says in line and "--runs-dir" in line
    else:  # chmod gives EACCES, not EROFS; only the injected error can say read-only
        assert ("read-only" in line or "permission denied" in line) and "--runs-dir" in line


def test_retrain_and_runs_show_checkpoints(tmp_path, capsys):
    assert main(["train", *TINY, "--runs-dir", str(tmp_path)]) == 0
    run_dir = Path(capsys.readouterr().out.splitlines()[0])
    record = json.loads((run_dir / "checkpoint.json").read_text())
    (run_dir / record["file"]).write_bytes(b"garbage")
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert "corrupt" in capsys.readouterr().out
    line = one_line_error(["analyze", str(run_dir), "--pieces", "spectrum", "--device", "cpu"], capsys)
    assert "--retrain" in line
    assert main(["train", "--config", str(run_dir / "config.json"), "--runs-dir", str(tmp_path), "--device", "cpu",
                 "--quiet", "--retrain"]) == 0
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "epoch 2" in listing and "corrupt" not in listing


def test_runs_lists_a_broken_store_without_a_traceback(tmp_path, capsys):
    from arreg_core import manifest

    bad = tmp_path / "resnet8-synthetic-pgd-eps8-0123456789ab"
    bad.mkdir()
    manifest.write_bytes(bad, "config.json", b"{not json")  # as written, so the manifest matches: broken, not edited
    manifest.write_bytes(bad, "metrics.json", b"{}")
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert "broken" in capsys.readouterr().out


def test_lock_timeout_flag(tmp_path, capsys):
    from arreg_core.cli import config_from_args

    args = build_parser().parse_args(["train", *TINY, "--runs-dir", str(tmp_path), "--lock-timeout", "0.2"])
    path = runs.run_path(config_from_args(args), tmp_path)
    path.mkdir(parents=True)
    with runs.run_lock(path):
        assert main(["train", *TINY, "--runs-dir", str(tmp_path), "--lock-timeout", "0.2"]) == 2
    waiting, error = capsys.readouterr().err.strip().splitlines()
    assert waiting == f"arreg: waiting for {path.name}, locked by pid {os.getpid()}"
    assert error.startswith("arreg: error: ") and "still locked by pid" in error


def test_fresh_deletes_only_a_run_store(tmp_path, capsys, monkeypatch):
    """`ARREG_RUNS=<a folder of yours> arreg book --fresh` leaves your files alone; a run store goes."""
    from arreg_core.book import BookError, fresh_start

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    monkeypatch.setenv("ARREG_RUNS", str(mine))
    line = one_line_error(["book", "--profile", "smoke", "--fresh", "-p", "bogus=1"], capsys)
    assert "bogus" in line and (mine / "thesis.tex").exists()  # parameters are checked before anything
    monkeypatch.setenv("ARREG_DEVICE", "tpu")
    one_line_error(["book", "--profile", "smoke", "--fresh"], capsys)
    assert (mine / "thesis.tex").exists()
    with pytest.raises(BookError, match=f"{mine} is not one"):
        fresh_start(mine)
    assert (mine / "thesis.tex").exists()
    assert main(["train", *TINY, "--runs-dir", str(tmp_path / "store")]) == 0
    fresh_start(tmp_path / "store")
    assert not (tmp_path / "store").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    fresh_start(empty)
    assert not empty.exists()


def test_a_broken_data_archive_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ARREG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))  # a gzip header, then nothing
    assert main(["train", "--dataset", "cifar10-jpeg", "--data-root", str(tmp_path), "--runs-dir",
                 str(tmp_path / "runs"), "--device", "cpu"]) == 2
    *progress, line = capsys.readouterr().err.strip().splitlines()
    assert all(p.startswith("arreg: decoding") for p in progress) and line.startswith("arreg: error: ")
    assert "cifar10-jpeg.tar.gz is not a readable tar.gz archive" in line and "download it again" in line
    assert not (tmp_path / "runs").exists()


def test_prepare_uses_the_store_the_book_reads(monkeypatch, tmp_path):
    """`arreg prepare` fills $ARREG_RUNS where set, like `arreg book` and the notebooks; --runs-dir wins."""
    from arreg_core import experiments

    seen = []
    def prepare_profile(profile, runs_dir=None, **kw):  # the store the real one would fill (it builds this)
        seen.append(experiments.Experiments.from_parameters(profile, runs_dir=runs_dir).runs_dir)
        return []

    monkeypatch.setattr(experiments, "prepare_profile", prepare_profile)
    monkeypatch.setenv("ARREG_RUNS", str(tmp_path / "store"))
    assert main(["prepare", "--profile", "smoke", "--device", "cpu"]) == 0
    assert main(["prepare", "--profile", "smoke", "--device", "cpu", "--runs-dir", str(tmp_path / "mine")]) == 0
    monkeypatch.delenv("ARREG_RUNS")
    assert main(["prepare", "--profile", "smoke", "--device", "cpu"]) == 0
    repo = Path(__file__).resolve().parents[1]
    assert [str(p) for p in seen] == [str(tmp_path / "store"), str(tmp_path / "mine"), str(repo / "results/smoke/runs")]


# ----------------------------------------------------------------------------- bounds, messages, the store's place

def test_a_data_set_larger_than_the_memory_is_refused_up_front(tmp_path):
    # the address space is capped, so that a regression fails fast instead of filling the machine
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30)); "
              "from arreg_core.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", script, "train", "--dataset", "synthetic", "--n-train", "100000000",
                           "--runs-dir", str(tmp_path / "runs"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "GiB" in lines[0] and "--n-train" in lines[0] and "unexpected" not in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()


def test_a_full_disk_names_the_folder(tmp_path, capsys, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    line = one_line_error(["train", *TINY, "--runs-dir", str(tmp_path / "store")], capsys)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "no space left on device" in line and str(tmp_path / "store") in line


def test_a_relative_arreg_runs_is_one_store_for_book_prepare_and_experiments(tmp_path, monkeypatch):
    from arreg_core import book, experiments

    class Stop(Exception):
        pass

    seen = {}

    def prepare(ex, *args, **kwargs):  # the store the real one would fill
        seen.setdefault("prepare" if "prepare" not in seen else "book", ex.runs_dir)
        return []

    monkeypatch.setattr(experiments.Experiments, "prepare", prepare)
    monkeypatch.setattr(book, "stage", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARREG_RUNS", "scratch/runs")
    assert main(["prepare", "--profile", "smoke", "--device", "cpu"]) == 0
    with pytest.raises(Stop):
        book.build_book("smoke")
    seen["experiments"] = experiments.Experiments.from_environment("smoke").runs_dir
    seen["train"] = runs.default_runs_dir()
    repo = Path(__file__).resolve().parents[1]
    assert {k: str(v) for k, v in seen.items()} == dict.fromkeys(("prepare", "book", "experiments", "train"),
                                                                  str(repo / "scratch" / "runs"))
    assert list(tmp_path.iterdir()) == []
