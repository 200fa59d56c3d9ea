"""Benchmarks of the count-matrix engine (issue 5): prints the tables, writes ``bench/results.json``.

    python bench/run.py [--quick] [--reps N] [--out PATH]

The measuring code lives in :mod:`attnlib.benchmark` (the book's performance appendix runs it too);
this is the command line. ``--quick`` runs every benchmark once at a tiny size (for the tests; its
numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from attnlib.benchmark import run_all

HERE = Path(__file__).resolve().parent


def print_table(title: str, rows: list[dict], columns: Sequence[str]) -> None:
    """A plain fixed-width table of ``columns`` of ``rows``."""
    print(f"\n{title}")
    print("  " + "  ".join(f"{c:>17}" for c in columns))
    for row in rows:
        print("  " + "  ".join(f"{_fmt(row[c]):>17}" for c in columns))


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def report(results: dict) -> None:
    """Print every table and the targets' verdicts."""
    machine = results["machine"]
    print(f"\ndevice {machine['device']} ({machine['device_name']}), torch {machine['torch']}, "
          f"{machine['torch_threads']} threads; matmul {machine['matmul_gflops_float32']:.1f} GFLOP/s (float32), "
          f"{machine['matmul_gflops_float64']:.1f} (float64); copy {machine['copy_gbps']:.1f} GB/s")
    padded_columns = ["head", "engine_ms", "reference_ms", "speedup_median", "products_ms", "bound_ms",
                      "roofline_fraction"]
    print_table(f"{results['sst2_source']}: one training epoch, engine vs padded reference "
                "(d_e = 200, d_k = 10, float32)", results["sst2"], padded_columns)
    print_table("synthetic preset: one training epoch, engine vs padded reference (d = 10, float64)",
                results["synthetic"], padded_columns)
    print_table("synthetic preset: train() epoch for S seeds at once", results["seeds"],
                ["head", "seeds", "epoch_ms", "ms_per_seed", "products_ms"])
    print_table(f"{results['sst2_source']}: {results['sst2_shared'][0]['seeds']} seeds on the one corpus, engine epoch "
                "(shared count matrix vs stacked block-diagonally, per seed vs one seed)", results["sst2_shared"],
                ["head", "one_seed_ms", "shared_ms", "stacked_ms", "shared_per_seed_over_one",
                 "shared_speedup_over_stacked"])
    fit = results["epoch_time_linear_fit"]
    print_table(f"engine epoch vs corpus size (Attn-FC, 1 seed, 1 thread): log-log slope "
                f"{results['epoch_time_vs_tokens_exponent']:.3f}; fit {fit['fixed_ms']:.3g} ms + "
                f"{fit['ns_per_token']:.3g} ns/token + {fit['ns_per_sentence']:.3g} ns/sentence "
                f"(within {fit['max_relative_error']:.0%})", results["corpus_size"],
                ["sentences", "length", "tokens", "epoch_ms"])
    print("\ntargets: " + ", ".join(f"{k} {'met' if ok else 'NOT met'} ({results[k]:.3g})"
                                    for k, ok in results["targets_met"].items()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark once at a tiny size (for tests)")
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions per timing (default 5)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="where to write the JSON results")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run_all(args.quick, args.reps,
                      log=lambda stage: print(f"[{time.perf_counter() - started:5.0f} s] {stage}", file=sys.stderr,
                                              flush=True))
    report(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
