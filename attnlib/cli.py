"""Command line: regenerate any figure, table and metrics file without the book.

    attnlib run synthetic --seeds 5 --out out/
    attnlib list
    attnlib verify-data
    attnlib bench --out out/
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the command line only writes files

from attnlib.experiments import EXPERIMENTS  # noqa: E402 - after choosing the backend

ALL_SUMMARY = "every experiment above, then the reproduction scorecard (scorecard.json, .csv, .md)"


def _output_folder(root: Path, name: str) -> Path:
    """``root/name``, created; a clear error when it cannot be written."""
    folder = root / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise SystemExit(f"attnlib: cannot write to the output folder {folder}: {error.strerror or error}")
    return folder


def _write_outputs(folder: Path, tables: dict, figures: dict, metrics: dict, provenance: dict | None = None) -> None:
    """Write tidy tables (CSV), figures (PNG and PDF, then closed) and metrics.json into ``folder``.

    A figure may be given as a function that draws it, so that many figures never stay open together.

    ``provenance`` (a result's ``provenance()``) goes into every figure's metadata and sidecar and
    under the key ``provenance`` of metrics.json, beside the unchanged metric keys.
    """
    import matplotlib.pyplot as plt

    from attnlib.files import write_json, write_text
    from attnlib.plots import save_figure

    for name, table in tables.items():
        write_text(folder / f"{name}.csv", table.to_csv(index=False, float_format="%.9g"))
    for name, figure in figures.items():
        figure = figure() if callable(figure) else figure  # drawn only now: one open figure at a time
        save_figure(figure, folder / name, provenance=provenance)
        plt.close(figure)
    if provenance is not None:
        metrics = {**metrics, "provenance": provenance}
    write_json(folder / "metrics.json", metrics)


def _write_result(folder: Path, result) -> None:
    """Write an experiment's result (its tables, figures, metrics and provenance) into ``folder``."""
    _write_outputs(folder, result.tables(), result.figures(), result.metrics(), result.provenance())


def _run_experiment(name: str, args: argparse.Namespace):
    """``attnlib run NAME`` for a registered experiment: run it, write OUT/NAME/, return its result.

    An experiment with options of its own (sst: --only, --store, --jobs) has its own command.
    """
    if name in OWN_COMMANDS:
        return OWN_COMMANDS[name](args)
    folder = _output_folder(args.out, name)
    result = EXPERIMENTS[name].run(config=args.base, seeds=range(args.seeds) if args.seeds else None, quiet=args.quiet)
    _write_result(folder, result)
    return result


def _sst_setting(kind: str, head: str, variant: str, seeds: tuple[int, ...], store: Path | None, quiet: bool):
    """One SST setting, a task of ``attnlib run sst``: with ``store``, always retrained and written to
    STORE/sst at once; otherwise a matching stored run is served."""
    from attnlib.experiments.sst import STORE_DIR, load_or_train

    run = load_or_train(kind, head, variant, seeds=seeds, folder=None if store else STORE_DIR, quiet=quiet)
    if store:
        run.save(Path(store) / "sst")
    return run


def run_sst_command(args: argparse.Namespace):
    import pandas as pd

    from attnlib.experiments.sst import SETTINGS, available_settings
    from attnlib.experiments.sst_experiment import SSTExperimentResult
    from attnlib.sweep import sweep
    from attnlib.plots.sst import (plot_attention_shift, plot_sen_gaps, plot_sen_grid, plot_single_sentence,
                                   plot_sst_losses, t1_markdown)

    folder = _output_folder(args.out, "sst")
    seeds = tuple(range(args.seeds or 3))
    only = getattr(args, "only", None)
    store = getattr(args, "store", None)
    if only or store:  # named settings, or everything for --store, are trained whatever they cost
        settings = [s for s in SETTINGS if not only or "_".join(s) in only.split(",")]
    else:
        settings, skipped = available_settings()
        for setting in skipped:
            print(f"{'_'.join(setting)}: skipped (no stored run, and Attn-TC takes up to an hour here; "
                  f"train it with --only {'_'.join(setting)})", flush=True)
    # settings are independent: --jobs N trains N at once (joblib; see attnlib.sweep)
    trained = sweep(_sst_setting, settings, n_jobs=getattr(args, "jobs", None), seeds=seeds, store=store,
                    quiet=args.quiet)
    runs = dict(zip(settings, trained))
    for setting, run in runs.items():
        print(f"{'_'.join(setting)}: {run.source}, test accuracy {run.final_test_accuracy.mean():.4f}", flush=True)
    result = SSTExperimentResult(runs)
    tables = {"t1": result.table(), "t1_per_seed": result.per_seed(), "f6_checks": result.f6_checks(),
              "losses": pd.concat([r.losses() for r in runs.values()], ignore_index=True),
              "f5_gaps": pd.concat([r.sen_gaps() for r in runs.values()], ignore_index=True),
              "f5_curves": pd.concat([r.sen_curves() for r in runs.values()], ignore_index=True)}
    sst2 = [r for (k, _, _), r in runs.items() if k == "SST2"]
    if sst2:
        tables["f6_curves"] = pd.concat([r.shift_curves() for r in sst2], ignore_index=True)
        tables["f7_sentence"] = pd.concat([r.single_sentence() for r in sst2], ignore_index=True)
        tables["f7_crossings"] = pd.concat([r.f7_crossings() for r in sst2], ignore_index=True)
    (folder / "t1.md").write_text(t1_markdown(result.table()) + "\n")
    figures = {"t1_losses": plot_sst_losses(result), "f5_gaps": plot_sen_gaps(result)}
    for (kind, head, variant), run in runs.items():
        figures[f"f5_top12_{kind}_{head}_{variant}"] = partial(plot_sen_grid, run, 12)
        figures[f"f5_top100_{kind}_{head}_{variant}"] = partial(plot_sen_grid, run, 100)
    if sst2:
        figures["f6_attention_shift"] = plot_attention_shift(sst2)
        figures["f7_single_sentence"] = plot_single_sentence(sst2)
    _write_outputs(folder, tables, figures, result.metrics(), result.provenance())
    return result


OWN_COMMANDS = {"sst": run_sst_command}


def run_all_command(args: argparse.Namespace) -> None:
    """Each registered experiment into OUT/NAME/, then OUT/scorecard.* from the same results."""
    from attnlib.scorecard import assemble

    results = {}
    for name in EXPERIMENTS:
        started = time.perf_counter()
        results[name] = _run_experiment(name, args)
        print(f"{name}: wrote {args.out / name} in {time.perf_counter() - started:.0f} s", flush=True)
    card = assemble(results)
    card.write(_output_folder(args.out, "."))
    counts = card.table.verdict.value_counts()
    print("scorecard: " + ", ".join(f"{n} {v}" for v, n in counts.items()), flush=True)


def _run_command(args: argparse.Namespace) -> Path:
    """``attnlib run NAME`` or ``attnlib run all``; the folder written."""
    if args.experiment == "all":
        run_all_command(args)
        return args.out
    _run_experiment(args.experiment, args)
    return args.out / args.experiment


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnlib",
        description="Reproduce the experiments of 'On the Dynamics of Training Attention Models' (ICLR 2021).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run an experiment and write its figures, tables and metrics",
                              description="Run an experiment at the paper's settings and write its figures "
                                          "(PNG and PDF), tidy tables (CSV) and metrics.json into OUT/EXPERIMENT/.")
    run.add_argument("experiment", choices=sorted([*EXPERIMENTS, "all"]), help="which experiment (see 'attnlib list')")
    run.add_argument("--seeds", type=_positive_int, default=None,
                     help="number of seeds; seeds 0..N-1 are used (default: as in the book, 5 for synthetic "
                          "and ablation, 3 for beyond and sst)")
    run.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--store", type=Path, default=None,
                     help="sst only: retrain and store the reduced runs under STORE/sst (e.g. --store results/)")
    run.add_argument("--only", default=None,
                     help="sst only: comma-separated settings, e.g. SST2_FC_default,SST2_TC_patience2000")
    run.add_argument("--config", type=Path, default=None,
                     help="synthetic, ablation, beyond: a JSON or TOML file of fields to change in the experiment's "
                          "base config, e.g. {\"train\": {\"lr\": 0.05}, \"model\": {\"d_embed\": 20}}")
    run.add_argument("--no-cache", action="store_true",
                     help="retrain instead of serving cached training results (see 'attnlib cache info')")
    run.add_argument("--jobs", type=_positive_int, default=None,
                     help="sst only: settings trained at once in separate processes (default: one after another; "
                          "a joblib backend context such as Dask's takes over from the API, see attnlib.sweep)")

    commands.add_parser("list", help="list the experiments 'attnlib run' knows")

    cache = commands.add_parser("cache", help="show or clear the on-disk cache of training results",
                                description="Training results are cached in $ATTNLIB_CACHE_DIR (default: "
                                            "$XDG_CACHE_HOME/attnlib or ~/.cache/attnlib); ATTNLIB_CACHE=off "
                                            "turns the cache off.")
    cache.add_argument("action", choices=("info", "clear"),
                       help="info: location, number of entries and size; clear: remove every entry")

    bench = commands.add_parser("bench", help="benchmark the engine: print the tables, write results.json and the "
                                              "scaling figure",
                                description="Time the engine against the padded reference, its roofline fraction, "
                                            "seeds trained at once and the epoch time against the corpus size; print "
                                            "the tables and write OUT/bench/results.json and OUT/bench/scaling.png "
                                            "and .pdf (a few minutes; `make bench` writes into bench/).")
    bench.add_argument("--quick", action="store_true",
                       help="every benchmark once at a tiny size (checks that they run; the numbers mean nothing)")
    bench.add_argument("--reps", type=_positive_int, default=5,
                       help="alternating repetitions of each engine-vs-reference timing (default 5)")
    bench.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")

    verify = commands.add_parser("verify-data", help="check the SST files (location and sha256 checksums)")
    verify.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding train.txt, dev.txt, test.txt (default: $ATTNLIB_DATA_DIR, "
                             "then ../shared/data/sst beside the checkout, then the user cache)")
    verify.add_argument("--no-download", action="store_true", help="never download the data, only check")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        listed = {**{name: module.SUMMARY for name, module in EXPERIMENTS.items()}, "all": ALL_SUMMARY}
        width = max(map(len, listed))
        for name, summary in sorted(listed.items()):
            print(f"{name:<{width}}  {summary}")
        return 0
    if args.command == "verify-data":
        from attnlib.data import SSTDataError, verify_data
        try:
            folder = verify_data(args.data_dir, download=not args.no_download)
        except SSTDataError as error:
            print(f"attnlib: {error}", file=sys.stderr)
            return 1
        print(f"SST data verified in {folder}")
        return 0
    if args.command == "cache":
        return _cache_command(args.action)
    if args.command == "bench":
        return _bench_command(args)
    try:
        _prepare_run(args)
    except ValueError as error:
        print(f"attnlib: {error}", file=sys.stderr)
        return 2
    from contextlib import nullcontext

    from attnlib import cache
    from attnlib.data import SSTDataError
    from attnlib.train import TrainingDiverged

    started = time.perf_counter()
    try:
        with cache.disabled() if args.no_cache else nullcontext():
            folder = _run_command(args)
    except (TrainingDiverged, SSTDataError) as error:
        print(f"attnlib: {error}", file=sys.stderr)
        return 1
    print(f"wrote {folder} in {time.perf_counter() - started:.0f} s")
    return 0


def _prepare_run(args: argparse.Namespace) -> None:
    """Load ``--config`` into ``args.base`` and check ``--only``; a ValueError says what is wrong."""
    from attnlib.config import RunConfig

    args.base = None
    if args.config is not None:
        takes = [name for name, module in EXPERIMENTS.items() if module.PRESET is not None]
        if args.experiment not in takes:
            raise ValueError(f"--config applies to {', '.join(takes)}, not to {args.experiment!r}")
        args.base = RunConfig.from_file(args.config, EXPERIMENTS[args.experiment].PRESET())
    if args.only:
        from attnlib.experiments.sst import SETTINGS

        known = ["_".join(setting) for setting in SETTINGS]
        unknown = [name for name in args.only.split(",") if name not in known]
        if unknown:
            raise ValueError(f"--only names unknown SST settings {', '.join(map(repr, unknown))}; "
                             f"known settings: {', '.join(known)}")


def _bench_command(args: argparse.Namespace) -> int:
    """``attnlib bench``: run :func:`attnlib.benchmark.run_all`, print its report, write the results and
    the scaling figure (with their provenance) into OUT/bench/."""
    import matplotlib.pyplot as plt

    from attnlib import benchmark
    from attnlib.files import write_json
    from attnlib.plots import plot_scaling, save_figure
    from attnlib.provenance import provenance

    folder = _output_folder(args.out, "bench")
    started = time.perf_counter()
    results = benchmark.run_all(args.quick, args.reps, log=lambda stage: print(
        f"[{time.perf_counter() - started:5.0f} s] {stage}", file=sys.stderr, flush=True))
    print(benchmark.format_report(results))
    record = provenance()
    write_json(folder / "results.json", {**results, "provenance": record})
    figure = plot_scaling(results["corpus_size"], results["epoch_time_linear_fit"])
    save_figure(figure, folder / "scaling", provenance=record)
    plt.close(figure)
    print(f"wrote {folder} in {time.perf_counter() - started:.0f} s")
    return 0


def _cache_command(action: str) -> int:
    """``attnlib cache info`` and ``attnlib cache clear``."""
    from attnlib import cache

    if action == "info":
        found = cache.info()
        print(f"location: {found['location']}")
        print(f"entries:  {found['entries']}")
        print(f"size:     {found['bytes'] / 1e6:.1f} MB ({found['bytes']} bytes)")
        print(f"caching:  {'on' if found['enabled'] else 'off (ATTNLIB_CACHE)'}")
        return 0
    folder = cache.cache_dir()
    try:
        removed = cache.clear(folder)
    except OSError as error:
        print(f"attnlib: cannot clear the cache in {folder}: {error}", file=sys.stderr)
        return 1
    for path in removed:
        print(f"removed {path}")
    print(f"removed {len(removed)} cache file{'' if len(removed) == 1 else 's'} from {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
