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
