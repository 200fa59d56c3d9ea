"""Adding an experiment is one module and one registry line: a toy experiment defined in the tests
(``toy_experiment.py``) is registered as the package registers its own, then listed by ``attnlib list``,
run by ``attnlib run``, its checks written to ``checks.csv`` and its rows put in the scorecard."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import toy_experiment

from attnlib import scorecard
from attnlib.cli import main
from attnlib.experiments import EXPERIMENTS, register


@pytest.fixture
def toy():
    entry = register(toy_experiment)
    yield entry
    del EXPERIMENTS[entry.name]


def test_a_registered_toy_is_listed_run_checked_and_scored(toy, tmp_path, capsys) -> None:
    assert main(["list"]) == 0
    listed = {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1] for line in capsys.readouterr().out.splitlines()}
    assert listed["toy"] == toy_experiment.SUMMARY
    assert main(["run", "toy", "--out", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / "toy"
    assert {"losses.csv", "checks.csv", "metrics.json", "toy_losses.png", "toy_losses.pdf"} <= {
        p.name for p in folder.iterdir()}
    checks = pd.read_csv(folder / "checks.csv")
    assert list(checks.id) == ["X1"] and list(checks.verdict) == ["reproduced"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["seeds"] == list(toy_experiment.DEFAULT_SEEDS) and "Attn-FC.final_train_loss" in metrics
    # its bound on --seeds comes from the module
    assert main(["run", "toy", "--seeds", str(toy_experiment.MAX_SEEDS + 1), "--out", str(tmp_path)]) == 2
    assert f"--seeds is at most {toy_experiment.MAX_SEEDS} for toy" in capsys.readouterr().err
    # the scorecard reads it, after the paper's claims
    ids = scorecard.claim_ids()
    assert "toy" in scorecard.scored() and ids.index("X1") > max(ids.index(i) for i in ("F1", "T1", "N6"))
    card = scorecard.assemble({"toy": toy.run(seeds=[0])})
    assert list(card.table.id) == ["X1"] and card.table.verdict.iloc[0] == "reproduced"
    assert card.provenance["config_hashes"] == {"toy:Attn-FC": toy_experiment.PRESET().config_hash()}


def test_an_experiment_without_checks_still_assembles(toy) -> None:
    """An unscored experiment's result (here: beyond's shape, no checks) gives an empty scorecard, not an error."""
    result = toy.run(seeds=[0])
    result.checks = lambda: []
    assert scorecard.build_scorecard({"toy": result}).empty
