"""bench/run.py --quick (attnlib bench) runs every benchmark of attnlib.benchmark end to end and writes every
documented result and the scaling figure (no timing is checked); the cost-model fit on exact data."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnlib import benchmark

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"
KEYS = ["sst2_fc_speedup_vs_padded", "sst2_tc_speedup_vs_padded", "sst2_fc_roofline_fraction",
        "synthetic_seeds20_over_seeds1_time", "epoch_time_vs_tokens_exponent"]


def test_quick_benchmark_writes_finite_results(tmp_path: Path) -> None:
    """``bench/run.py`` (``attnlib bench`` into a folder) prints the report and writes the results and figure."""
    done = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "bench" / "results.json"
    assert "targets: sst2_fc_speedup_vs_padded" in done.stdout and "engine epoch vs corpus size" in done.stdout
    for name in ("scaling.png", "scaling.pdf", "scaling.provenance.json"):
        assert (tmp_path / "bench" / name).stat().st_size > 0, name
    results = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(results[key], float) and math.isfinite(results[key]), key
    assert {row["head"] for row in results["sst2"]} == {"FC", "TC"}
    assert all(math.isfinite(row["agreement_gap"]) and row["agreement_gap"] < 1e-3 for row in results["sst2"])
    assert {row["head"] for row in results["synthetic"]} == {"FC", "TC", "TL"}
    assert all(row["agreement_gap"] < 1e-9 for row in results["synthetic"])
    for row in results["sst2"] + results["synthetic"]:
        assert 0 < row["products_ms"] and 0 < row["bound_ms"] and 0 < row["roofline_fraction"]
    assert results["seeds"] and results["corpus_size"] and results["machine"]["torch"]
    for row in results["seeds"]:  # the engine's epoch against its memory-traffic bound
        assert 0 < row["memory_bound_ms"] and math.isfinite(row["memory_bound_ms"])  # no timing is checked
        assert math.isclose(row["times_memory_bound"], row["epoch_ms"] / row["memory_bound_ms"])
    heads = {row["head"] for row in results["seeds"]}
    assert set(results["synthetic_epoch_ms"]) == set(results["synthetic_times_memory_bound"]) == heads
    assert all(row["classes"] >= 2 for row in results["corpus_size"])
    assert {row["head"] for row in results["sst2_shared"]} == {"FC", "TC"}
    for row in results["sst2_shared"]:
        assert all(0 < row[k] < math.inf for k in ("one_seed_ms", "shared_ms", "stacked_ms", "shared_products_ms"))
    assert math.isfinite(results["sst2_fc_shared_seeds_per_seed_over_one"])
    assert set(results["targets_met"]) == set(KEYS[:4])
    assert results["provenance"]["attnlib_version"]
    assert set(results["epoch_time_linear_fit"]) == {"fixed_ms", "ns_per_token", "ns_per_sentence",
                                                     "max_relative_error"}


def test_linear_cost_fit_recovers_the_terms() -> None:
    """Times made exactly of a fixed cost, a cost per token and one per sentence give those back."""
    from attnlib.benchmark import linear_cost_fit

    rows = [{"sentences": n, "tokens": n * length, "epoch_ms": 0.3 + 2e-6 * n * length + 7e-5 * n}
            for n in (10**3, 10**4, 10**5) for length in (11, 51, 201)]
    fit = linear_cost_fit(rows)
    assert math.isclose(fit["fixed_ms"], 0.3, rel_tol=1e-6)
    assert math.isclose(fit["ns_per_token"], 2.0, rel_tol=1e-6)
    assert math.isclose(fit["ns_per_sentence"], 70.0, rel_tol=1e-6)
    assert fit["max_relative_error"] < 1e-8
    skewed = [dict(row, epoch_ms=row["epoch_ms"] * (1.1 if row["sentences"] == 10**5 else 1.0)) for row in rows]
    assert 0.01 < linear_cost_fit(skewed)["max_relative_error"] < 0.1


def test_benchmark_refuses_to_time_an_engine_that_disagrees_with_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed-up is only reported for results that agree: a gap over the tolerance is an error."""
    from attnlib import benchmark
    from attnlib.config import ModelConfig

    data, _ = benchmark.sst2_data(quick=True)
    monkeypatch.setattr(benchmark, "agree", lambda engine, reference, epochs: 0.5)
    with pytest.raises(RuntimeError, match="disagree"):
        benchmark.padded_case(ModelConfig(head="FC", d_embed=8, d_key=4), data.train, data.n_classes,
                              torch.float64, machine={}, reps=1)


# ----------------------------------------------------------------------------------------------
# The benchmark as a registered experiment (attnlib run performance)
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_performance():
    from attnlib.experiments import EXPERIMENTS

    return EXPERIMENTS["performance"].run(quick=True, reps=1)


def test_the_performance_experiment_has_the_common_surface(quick_performance) -> None:
    from attnlib.experiments import performance

    result = quick_performance
    tables = result.tables()
    assert set(tables) == set(performance.TABLES)
    for name, key in performance.TABLES.items():
        assert tables[name].to_dict("records") == result.results[key]
    met = benchmark.verdicts(result.results)
    checks = result.checks()
    assert [c.key for c in checks] == list(benchmark.TARGETS)
    for check in checks:
        assert check.reproduced == met[check.key] and check.total == 1
        assert float(check.ours) == pytest.approx(result.results[check.key], rel=5e-3)
    metrics = result.metrics()
    assert metrics["sst2_fc_speedup_vs_padded"] == result.results["sst2_fc_speedup_vs_padded"]
    assert not any(isinstance(v, (list, dict)) for v in metrics.values() if v is not metrics["seeds"])
    assert list(result.figures()) == ["scaling"]
    with pytest.raises(ValueError, match="takes no config"):
        performance.run(config=benchmark.synthetic_preset())


def test_run_performance_writes_its_folder(quick_performance, tmp_path, monkeypatch) -> None:
    from dataclasses import replace

    from attnlib.cli import main
    from attnlib.experiments import EXPERIMENTS, performance

    entry = replace(EXPERIMENTS["performance"], run=lambda **options: quick_performance)  # measured once, above
    monkeypatch.setitem(EXPERIMENTS, "performance", entry)
    assert main(["run", "performance", "--out", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / "performance"
    written = {p.name for p in folder.iterdir()}
    assert {f"{name}.csv" for name in performance.TABLES} | {"scaling.png", "scaling.pdf", "metrics.json"} <= written
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["sst2_tc_speedup_vs_padded"] == quick_performance.results["sst2_tc_speedup_vs_padded"]
