"""The scorecard: complete (every reproduced figure, table and check has rows) and its verdicts follow from the numbers."""

from __future__ import annotations

import json

import pytest

from attnlib import scorecard
from attnlib.config import RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.experiments import (
    EXPERIMENTS,
    ablation_checks,
    keys_parallel_deviation,
    sst_experiment,
    step_size_study,
    synthetic_checks,
)
from attnlib.experiments.base import ExperimentResult
from attnlib.experiments.numerical import PARALLEL_TOLERANCE
from attnlib.experiments.sst import STORE_DIR
from attnlib.experiments.synthetic import RESIDUAL_MAX

SMALL = SyntheticDataConfig(n_nontopic=200, n_train=120, n_test=40)
STORED_SETTINGS = [(kind, head, "default") for kind in ("SST2", "SST5") for head in ("FC", "TC")]


@pytest.fixture(scope="module")
def parts():
    base = RunConfig(data=SMALL, train=TrainConfig(epochs=300))
    synthetic = EXPERIMENTS["synthetic"].run(config=base, seeds=[0, 1], quiet=True)
    ablation = EXPERIMENTS["ablation"].run(config=base.replace(model={"embed_init_std": 0.1}), seeds=[0, 1], quiet=True)
    stored = [s for s in STORED_SETTINGS + [("SST2", "FC", "patience2000")]
              if (STORE_DIR / f"{'_'.join(s)}.json").exists()]
    sst = sst_experiment.run(settings=stored, seeds=(0, 1, 2))
    # N5 and N6 at a small size, given to the result as if it had trained them
    synthetic.step_sizes = step_size_study(learning_rates=(0.4, 0.2, 0.1), lr_times_epochs=10.0, data=SMALL)
    synthetic.keys_deviation = keys_parallel_deviation(epochs=30, config=base)
    return {"synthetic": synthetic, "ablation": ablation, "sst": sst}


@pytest.fixture(scope="module")
def table(parts):
    return scorecard.build_scorecard(parts)


@pytest.mark.parametrize("passed, needed, total, expected", [
    (5, 5, 5, "reproduced"), (4, 4, 5, "reproduced"), (3, 4, 5, "partly"), (0, 5, 5, "not reproduced"),
    (0, 0, 0, "reported"), (1, 1, 1, "reproduced"), (0, 1, 1, "not reproduced")])
def test_verdict_rule(passed, needed, total, expected):
    assert scorecard.verdict(passed, needed, total) == expected


def _claims(names) -> set[str]:
    """The claim ids the named experiments declare (other registered experiments may declare more)."""
    return {id_ for name in names for id_ in EXPERIMENTS[name].claims}


def test_every_experiment_id_has_rows(parts, table):
    assert _claims(parts) <= set(table.id)
    assert set(table.verdict) <= set(scorecard.VERDICTS)


def test_every_scored_experiment_is_registered():
    assert set(scorecard.scored()) <= set(EXPERIMENTS)


def test_verdicts_follow_from_the_counts(table):
    for row in table.itertuples():
        assert 0 <= row.passed <= row.total and row.needed <= row.total, row
        assert row.verdict == scorecard.verdict(row.passed, row.needed, row.total), row


def test_t1_verdicts_follow_from_the_accuracies(parts, table):
    sst_table = parts["sst"].table()
    for r in sst_table[sst_table.variant == "default"].itertuples():
        row = table[(table.id == "T1") & (table.claim == f"{r.dataset} {r.model}: test accuracy (%)")].iloc[0]
        within = abs(100 * parts["sst"].runs[(r.dataset, r.model[-2:], "default")].final_test_accuracy.mean()
                     - r.paper) <= sst_experiment.T1_TOLERANCE
        assert row.verdict == ("reproduced" if within else "not reproduced")


def test_identity_rows_count_model_seed_pairs(parts, table):
    summary = parts["synthetic"].summary()
    n1 = table[table.id == "N1"].iloc[0]
    assert n1.total == len(summary)
    assert n1.passed == int((summary.sen_max_abs_residual <= RESIDUAL_MAX).sum())
    ablation_rows = table[table.id == "F4"]
    assert len(ablation_rows) == len(ablation_checks(parts["ablation"]))


def test_the_chapters_verdict_tables_are_the_scorecards_rows(parts, table):
    """The synthetic and ablation chapters show the same criteria and verdicts as the scorecard."""
    chapter = synthetic_checks(parts["synthetic"])
    rows = table[table.id.isin(["F1", "F2", "F3"])]
    assert len(chapter) == len(rows)
    assert list(chapter.reproduced) == list(rows.verdict == "reproduced")
    assert list(ablation_checks(parts["ablation"]).reproduced) == list(table[table.id == "F4"].verdict == "reproduced")


def test_keys_stay_parallel_at_full_width(parts):
    assert parts["synthetic"].keys_deviation < PARALLEL_TOLERANCE


def test_write_outputs(parts, tmp_path):
    card = scorecard.assemble(parts)
    paths = card.write(tmp_path / "out")
    assert sorted(p.name for p in paths) == ["scorecard.csv", "scorecard.json", "scorecard.md"]
    payload = json.loads((tmp_path / "out" / "scorecard.json").read_text(encoding="utf-8"))
    assert len(payload["rows"]) == len(card.table)
    assert payload["provenance"]["config_hashes"] and payload["provenance"]["seeds"] == [0, 1, 2]
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_json_and_markdown(table):
    payload = scorecard.to_json(table)
    assert json.loads(json.dumps(payload)) == payload
    assert {"id", "claim", "paper", "ours", "tolerance", "verdict"} <= set(payload["rows"][0])
    assert sum(payload["counts"].values()) == len(table)
    markdown = scorecard.to_markdown(table)
    assert markdown.count("\n") == len(table) + 1


def test_run_all_writes_the_scorecard_beside_each_experiment(parts, tmp_path, monkeypatch):
    """`attnlib run all` runs every registered experiment, then builds the scorecard from their results
    (the experiments are replaced by the small runs above; each real command is tested in test_cli)."""
    from attnlib import cli

    ran = []

    class NoChecks(ExperimentResult):  # any other scored experiment: no rows, no runs
        def config_hashes(self) -> dict:
            return {}

    def fake(name, args):
        ran.append(name)
        cli._output_folder(args.out, name)
        return parts.get(name) or NoChecks(None, [])

    monkeypatch.setattr(cli, "_run_experiment", fake)
    assert cli.main(["run", "all", "--out", str(tmp_path), "--quiet"]) == 0
    assert ran == list(EXPERIMENTS)
    payload = json.loads((tmp_path / "scorecard.json").read_text(encoding="utf-8"))
    assert {row["id"] for row in payload["rows"]} == _claims(parts)
    assert (tmp_path / "scorecard.md").exists() and (tmp_path / "scorecard.csv").exists()
