"""The scorecard: complete (every reproduced figure, table and check has rows) and its verdicts follow from the numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from attnlib import scorecard
from attnlib.config import RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.experiments import (
    EXPERIMENTS,
    ablation,
    ablation_checks,
    base,
    keys_parallel_deviation,
    step_size_study,
    synthetic_checks,
)
from attnlib.experiments.base import ExperimentResult
from attnlib.experiments.numerical_checks import PARALLEL_TOLERANCE
from attnlib.experiments.sst import STORE_DIR
from attnlib.experiments.sst import experiment as sst_experiment
from attnlib.experiments.synthetic import RESIDUAL_MAX, SEPARATION_FACTOR

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
    f1 = parts["synthetic"].check("residual")
    assert f1.id == "F1" and f1.total == len(summary)
    assert f1.passed == int((summary.sen_max_abs_residual <= RESIDUAL_MAX).sum())
    ablation_rows = table[table.id == "F4"]
    assert len(ablation_rows) == len(ablation_checks(parts["ablation"]))


def test_one_gated_row_per_claim(table):
    """N1 is F1's claim on the same runs: it points at F1's row and is not counted a second time."""
    n1 = table[table.id == "N1"]
    assert len(n1) == 1 and n1.iloc[0].verdict == "reported"
    gated = table[table.verdict != "reported"]
    assert not gated.duplicated(["claim", "criterion"]).any()


def test_ablation_counts_seeds_as_units(parts):
    """Every F4 criterion counts the seeds that meet it; a criterion met by some seeds is *partly* reproduced."""
    summary = parts["ablation"].summary().set_index(["run", "seed"])
    checks = ablation_checks(parts["ablation"])
    n = len(parts["ablation"].seeds)
    assert (checks.total == n).all() and list(checks.reproduced) == list(checks.passed == n)
    ef = summary.loc["Attn-TC-EF"].final_train_loss
    row = checks[checks.criterion.str.startswith("Attn-TC-EF: final loss")].iloc[0]
    assert row.passed == int((ef >= ablation.EF_FINAL_LOSS_MIN).sum())


@pytest.mark.parametrize("low, high, holds", [
    ([1.0, 1.1, 0.9], [3.0, 3.1, 2.9], True),  # far apart
    ([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], False),  # inside the seed spread
    ([2.0, 2.1, 1.9], [1.0, 1.1, 0.9], False)])  # the other way round
def test_an_ordering_needs_its_margin(low, high, holds):
    o = base.ordering(("A", low), ("B", high))
    se = np.sqrt(np.var(low, ddof=1) / 3 + np.var(high, ddof=1) / 3)
    assert o.difference == pytest.approx(np.mean(high) - np.mean(low)) and o.standard_error == pytest.approx(se)
    assert o.holds is holds and o.holds == (o.difference > base.ORDER_MARGIN * se)


def test_f2_ordering_is_judged_with_the_margin(parts):
    t = parts["synthetic"].summary().pivot(index="seed", columns="model", values="epochs_to_train_loss_0.1")
    steps = [base.ordering((a, t[a]), (b, t[b])) for a, b in (("Attn-FC", "Attn-TC"), ("Attn-TC", "Attn-TL"))]
    row = parts["synthetic"].check("t01_order")
    assert (row.passed, row.total) == (sum(o.holds for o in steps), 2)


def test_f3_tests_two_orders_of_magnitude(parts):
    s = parts["synthetic"].summary()
    row = parts["synthetic"].check("separation")
    assert SEPARATION_FACTOR == 100.0
    assert row.passed == int((s.topic_score_min > 100 * s.nontopic_score_max_abs).sum()) and row.total == len(s)


def test_t1_ordering_row_follows_the_differences(parts, table):
    result = parts["sst"]
    rows = table[(table.id == "T1") & table.claim.str.contains("beats")]
    kinds = [k for k in ("SST2", "SST5") if all((k, h, "default") in result.runs for h in ("FC", "TC"))]
    if not kinds:
        pytest.skip("no stored default SST runs in this checkout")
    assert len(rows) == 1
    row = rows.iloc[0]
    holds = 0
    for kind in kinds:
        fc, tc = (100 * result.runs[(kind, h, "default")].final_test_accuracy for h in ("FC", "TC"))
        se = np.sqrt(fc.var(ddof=1) / len(fc) + tc.var(ddof=1) / len(tc))
        holds += int(tc.mean() - fc.mean() > base.ORDER_MARGIN * se)
    assert (row.passed, row.needed, row.total) == (holds, len(kinds), len(kinds))
    sentence = sst_experiment.t1_ordering_sentence(result)
    assert ("holds on neither" in sentence) == (holds == 0)


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


def test_rows_beyond_the_paper_are_kept_apart_from_its_counts() -> None:
    """An experiment that declares BEYOND_THE_PAPER (TREC) has its rows listed but not counted as the paper's."""
    from attnlib.experiments import EXPERIMENTS

    beyond = scorecard.beyond_ids()
    assert beyond == set(EXPERIMENTS["trec"].claims) and not beyond & set(EXPERIMENTS["synthetic"].claims)
    table = pd.DataFrame({"id": ["F1", "X1", "T1", "X3"], "verdict": ["reproduced"] * 4})
    assert list(scorecard.paper_rows(table).id) == ["F1", "T1"]
    assert list(scorecard.beyond_rows(table).id) == ["X1", "X3"]


# --------------------------------------------------------------------------- the stored scorecard


def test_a_stored_scorecard_reads_back_as_the_same_card(parts, tmp_path):
    card = scorecard.assemble(parts)
    path = scorecard.store(card, tmp_path / "scorecard.json")
    back = scorecard.load_stored(path)
    assert scorecard.differences(card, back) == []
    assert list(back.table.columns) == list(scorecard.COMPARED)
    assert back.table.verdict.tolist() == card.table.verdict.tolist()
    assert scorecard.require_stored_current(card, path).table.equals(back.table)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("change", ["ours", "verdict", "row", "runs"])
def test_any_difference_from_the_stored_scorecard_fails_in_one_line(parts, tmp_path, change):
    card = scorecard.assemble(parts)
    path = scorecard.store(card, tmp_path / "scorecard.json")
    payload = json.loads(path.read_text(encoding="utf-8"))
    first = payload["rows"][0]
    if change == "ours":
        first["ours"] += " (edited)"
    elif change == "verdict":
        first["verdict"] = "reproduced" if first["verdict"] != "reproduced" else "partly"
    elif change == "row":
        payload["rows"] = payload["rows"][1:]
    else:
        name = next(iter(payload["provenance"]["config_hashes"]))
        payload["provenance"]["config_hashes"][name] = "0" * 16
    path.write_text(json.dumps(payload), encoding="utf-8")
    with pytest.raises(scorecard.StoredScorecardError) as info:
        scorecard.require_stored_current(card, path)
    message = str(info.value)
    assert "\n" not in message and scorecard.STORE_COMMAND in message
    expected = {"ours": f"{first['id']} ours", "verdict": f"{first['id']} verdict", "row": "rows:",
                "runs": "config hashes differ"}[change]
    assert expected in message


def test_a_missing_or_broken_stored_scorecard_is_one_line(tmp_path):
    for text in (None, "{not json", json.dumps({"rows": [{"id": "F1"}]})):
        path = tmp_path / "scorecard.json"
        if text is not None:
            path.write_text(text, encoding="utf-8")
        with pytest.raises(scorecard.StoredScorecardError) as info:
            scorecard.load_stored(path)
        assert "\n" not in str(info.value) and scorecard.STORE_COMMAND in str(info.value)


def test_the_committed_stored_scorecard_is_whole_and_its_verdicts_follow_from_its_counts():
    """What the introduction shows: a row for every claim, verdicts that follow from the stored counts, the
    book's seeds. (That its cells are this code's is checked by `attnlib scorecard`, which make test runs after
    the chapters have trained the runs.)"""
    card = scorecard.load_stored()
    assert set(card.table.id) == set(scorecard.claim_ids())
    for row in card.table.itertuples():
        assert row.verdict == scorecard.verdict(int(row.passed), int(row.needed), int(row.total)), row.id
    seeds = sorted({int(s) for name in scorecard.scored() for s in EXPERIMENTS[name].seeds})
    assert card.provenance["seeds"] == seeds
    assert set(card.provenance["config_hashes"])


def test_the_scorecard_command_compares_with_the_stored_one_and_can_rewrite_it(parts, tmp_path, monkeypatch, capsys):
    from attnlib import cli

    card = scorecard.assemble(parts)
    path = tmp_path / "scorecard.json"
    monkeypatch.setattr(scorecard, "stored_path", lambda: path)
    monkeypatch.setattr(scorecard, "run_scorecard", lambda quiet=True: card)
    assert cli.main(["scorecard", "--quiet"]) == 1  # nothing stored yet
    assert "no stored scorecard" in capsys.readouterr().err
    assert cli.main(["scorecard", "--store", "--quiet"]) == 0 and path.is_file()
    assert cli.main(["scorecard", "--quiet"]) == 0
    assert f"{len(card.table)} rows agree" in capsys.readouterr().out
    changed = scorecard.Scorecard(card.table.assign(ours=card.table.ours + "!"), card.provenance)
    monkeypatch.setattr(scorecard, "run_scorecard", lambda quiet=True: changed)
    assert cli.main(["scorecard", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("attnlib: the stored scorecard") and err.count("\n") == 1
