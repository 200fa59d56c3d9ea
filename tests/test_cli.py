"""The command line: help, listing, bad input, and a real synthetic run writing metrics and figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import immutable

from attnlib.cli import main

MODELS = ("Attn-FC", "Attn-TC", "Attn-TL")
KEYS = ("test_accuracy", "final_train_loss", "epochs_to_train_loss_0.1", "sen_max_abs_residual",
        "topic_score_mean", "nontopic_score_max_abs")


def test_help_explains_every_option(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for option in ("--seeds", "--out", "--quiet", "synthetic"):
        assert option in text


def test_list(capsys) -> None:
    assert main(["list"]) == 0
    assert "synthetic" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "nonsense"], "invalid choice"),
    (["run", "synthetic", "--seeds", "0"], "whole number >= 1"),
    (["run", "synthetic", "--seeds", "two"], "whole number >= 1"),
])
def test_bad_input_is_refused(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_unwritable_output_folder(tmp_path: Path) -> None:
    """Refused before any training: the run would otherwise take minutes and then fail to write."""
    with immutable(tmp_path):
        with pytest.raises(SystemExit, match="cannot write"):
            main(["run", "synthetic", "--seeds", "1", "--out", str(tmp_path / "x"), "--quiet"])
        assert list(tmp_path.iterdir()) == []


def test_output_under_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="cannot write"):
        main(["run", "synthetic", "--seeds", "1", "--out", str(blocker), "--quiet"])


def test_run_synthetic_writes_metrics_figures_and_tables(tmp_path: Path) -> None:
    """One seed through ``python -m attnlib``, at the paper's settings but for 3,500 epochs instead of 5,000
    (Attn-TL, the slowest head, reaches full test accuracy on seed 0 at epoch 2,871 and training loss 0.1
    at epoch 3,067): the book's synthetic chapter runs the full length, and here N6's step-size runs, at
    lr x epochs fixed, shrink with it."""
    config = tmp_path / "shorter.json"
    config.write_text(json.dumps({"train": {"epochs": 3500}}))
    done = subprocess.run([sys.executable, "-m", "attnlib", "run", "synthetic", "--seeds", "1", "--config", str(config),
                           "--out", str(tmp_path), "--quiet"], capture_output=True, text=True, check=True)
    assert "wrote" in done.stdout
    folder = tmp_path / "synthetic"
    metrics = json.loads((folder / "metrics.json").read_text())
    for model in MODELS:
        for key in KEYS:
            value = metrics[f"{model}.{key}"]
            assert isinstance(value, float) and math.isfinite(value), (model, key, value)
        assert metrics[f"{model}.test_accuracy"] == 1.0
        assert metrics[f"{model}.sen_max_abs_residual"] < 0.05
    assert metrics["seeds"] == [0] and metrics["attnlib_version"]
    for stem in ("f1_sen_curves", "f2_loss_curves", "f3_final_distributions"):
        for suffix in (".png", ".pdf", "_single_run.png", "_single_run.pdf"):
            assert (folder / f"{stem}{suffix}").stat().st_size > 1000
    for table in ("curves", "losses", "final_words", "summary", "checks"):
        assert (folder / f"{table}.csv").stat().st_size > 0


@pytest.mark.parametrize("argv, first_line", [
    (["run", "synthetic", "--store", "X", "--only", "K", "--jobs", "4", "--store-dir", "/nonexistent", "--retrain"],
     "attnlib: --store applies to sst, not to synthetic"),
    (["run", "ablation", "--retrain"], "attnlib: --retrain applies to sst, trec, not to ablation"),
    (["run", "performance", "--seeds", "3"], "attnlib: --seeds applies to {takers}, not to performance: it trains "
                                             "no seeds"),
])
def test_options_the_experiment_does_not_use_are_refused(argv, first_line, tmp_path, capsys) -> None:
    """An option another experiment declares would be ignored: it is refused in one line naming who uses it."""
    from attnlib.experiments import EXPERIMENTS

    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    takers = ", ".join(name for name, entry in EXPERIMENTS.items() if entry.seeds)
    assert err.strip() == first_line.format(takers=takers) and not (tmp_path / "out").exists()
    assert "synthetic, ablation" in takers


def test_config_fields_the_experiment_sets_itself_are_refused(tmp_path, capsys) -> None:
    path = tmp_path / "head.json"
    path.write_text(json.dumps({"model": {"head": "TC"}}))
    assert main(["run", "synthetic", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"attnlib: config file {path}: model.head cannot be changed for synthetic: it sets "
                           f"model.head itself (it trains every head in turn)")
    assert not (tmp_path / "out").exists()
