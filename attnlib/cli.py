"""Command line: regenerate any figure, table and metrics file without the book.

    attnlib run synthetic --seeds 5 --out out/
    attnlib list
    attnlib verify-data
    attnlib bench --out out/
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import matplotlib

from attnlib import __version__, benchmark, cache
from attnlib.config import RunConfig, read_config_file
from attnlib.data import SSTDataError, verify_data
from attnlib.data.download import DataError
from attnlib.experiments import EXPERIMENTS
from attnlib.experiments.sst import SETTINGS, train_setting
from attnlib.experiments.sst_experiment import SSTExperimentResult, plan_runs
from attnlib.experiments.sst_store import StoredRunError, load_run, select_seeds, store_dir
from attnlib.experiments.sst_verify import describe, require_verified, verify_run
from attnlib.files import check_replaceable, replaced_folder, write_json, write_text
from attnlib.scorecard import assemble
from attnlib.sweep import SweepError, sweep
from attnlib.train import TrainingDiverged

matplotlib.use("Agg")  # the command line only writes files; nothing above imports pyplot (the figures do, lazily)

ALL_SUMMARY = "every experiment above, then the reproduction scorecard (scorecard.json, .csv, .md)"


def _output_folder(root: Path, name: str, entries: list[str] | None = None) -> Path:
    """``root/name``, checked before any work: it can be built beside itself and swapped into place as a
    whole (see :func:`attnlib.files.check_replaceable`; ``entries`` limits the check to what is replaced),
    else one clear error. Nothing is created here: :func:`_write_outputs` writes the folder at the end."""
    folder = root / name if name != "." else root
    try:
        check_replaceable(folder, entries)
    except OSError as error:
        where = f"{error.filename}: " if error.filename and Path(error.filename) != folder else ""
        raise SystemExit(f"attnlib: cannot write to the output folder {folder}: {where}{error.strerror or error}") from None
    return folder


def _write_outputs(folder: Path, tables: dict, figures: dict, metrics: dict, provenance: dict | None = None,
                   texts: dict[str, str] | None = None) -> None:
    """Write tidy tables (CSV), figures (PNG and PDF, then closed), ``texts`` (file name to content) and
    metrics.json as the new ``folder``.

    The folder is built as a whole beside the old one and renamed into place at the end
    (:func:`attnlib.files.replaced_folder`), so an interrupted run leaves the previous folder or none,
    never old and new files mixed. A figure may be given as a function that draws it, so that many
    figures never stay open together.

    ``provenance`` (a result's ``provenance()``) goes into every figure's metadata and sidecar and
    under the key ``provenance`` of metrics.json, beside the unchanged metric keys.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only commands that draw need them

    from attnlib.plots import save_figure  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only commands that draw need them

    with replaced_folder(folder) as staging:
        for name, table in tables.items():
            write_text(staging / f"{name}.csv", table.to_csv(index=False, float_format="%.9g"))
        for name, text in (texts or {}).items():
            write_text(staging / name, text)
        for name, figure in figures.items():
            figure = figure() if callable(figure) else figure  # drawn only now: one open figure at a time
            try:
                save_figure(figure, staging / name, provenance=provenance)
            finally:
                plt.close(figure)
        if provenance is not None:
            metrics = {**metrics, "provenance": provenance}
        write_json(staging / "metrics.json", metrics)


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
    """Train one SST setting, a task of ``attnlib run sst``; with ``store``, write it to STORE/sst at once."""
    run = train_setting(kind, head, variant, seeds, quiet=quiet)
    if store:
        run.save(Path(store) / "sst")
    return run


MAX_SST_SEEDS = 10
"""Upper bound of ``attnlib run sst --seeds``: each seed is one more model in the batch (memory and time
grow with it); the book uses 3."""


def _serve_sst(setting: tuple[str, str, str], seeds: list[int], folder: Path, where: str):
    """A stored run after its checks (one line each way; a failed check raises StoredRunError)."""
    run = load_run(*setting, folder)
    report = require_verified(verify_run(run, replay=False))
    print(f"{'_'.join(setting)}: stored in {where}; checks: {describe(report)}", flush=True)
    return select_seeds(run, seeds)


def run_sst_command(args: argparse.Namespace):
    seeds = tuple(range(args.seeds or 3))
    only = getattr(args, "only", None)
    store = getattr(args, "store", None)
    retrain = bool(store) or getattr(args, "retrain", False)  # --store always retrains what it stores
    store_folder, where = store_dir(getattr(args, "store_dir", None))
    if getattr(args, "store_dir", None) is not None and not store_folder.is_dir():
        raise StoredRunError(f"--store-dir {store_folder} is not a folder")
    folder = _output_folder(args.out, "sst")
    plan, settings, notes = plan_runs(seeds, store_folder, where, only.split(",") if only else None, retrain)
    for note in notes:
        print(note, flush=True)
    served = {setting: _serve_sst(setting, served_seeds, store_folder, where) for setting, served_seeds in plan.items()}
    # settings are independent: --jobs N trains N at once (joblib; see attnlib.sweep)
    trained = dict(zip(settings, sweep(_sst_setting, settings, n_jobs=getattr(args, "jobs", None), seeds=seeds,
                                       store=store, quiet=args.quiet)))
    runs = {s: served[s] if s in served else trained[s] for s in SETTINGS if s in served or s in trained}
    if not runs:
        raise StoredRunError(f"no SST setting to run: every one asked for was skipped (stored runs: {where})")
    for setting, run in runs.items():
        print(f"{'_'.join(setting)}: {run.source}, seeds {', '.join(map(str, run.seeds))}, "
              f"test accuracy {run.final_test_accuracy.mean():.4f}", flush=True)
    result = SSTExperimentResult(runs)
    _write_outputs(folder, result.tables(), result.figures(), result.metrics(), result.provenance(),
                   texts=result.texts())
    return result


OWN_COMMANDS = {"sst": run_sst_command}


def run_all_command(args: argparse.Namespace) -> None:
    """Each registered experiment into OUT/NAME/, then OUT/scorecard.* from the same results, so the
    scorecard always describes the folders beside it; OUT is built beside itself and replaced as a whole."""
    results = {}
    with _whole_out(args, [*EXPERIMENTS, "scorecard.json", "scorecard.csv", "scorecard.md"]) as shown:
        for name in EXPERIMENTS:
            started = time.perf_counter()
            results[name] = _run_experiment(name, args)
            print(f"{name}: wrote {shown(args.out / name)} in {time.perf_counter() - started:.0f} s", flush=True)
        card = assemble(results)
        card.write(args.out)
    counts = card.table.verdict.value_counts()
    print("scorecard: " + ", ".join(f"{n} {v}" for v, n in counts.items()), flush=True)


@contextmanager
def _whole_out(args: argparse.Namespace, entries: list[str]) -> Iterator[Callable[[Path], Path]]:
    """Inside the block ``args.out`` is a new OUT being built beside the old one (checked first: the
    ``entries`` it replaces must be writable); at its end the new OUT replaces the old one as a whole,
    keeping the old one's other entries, so an interrupted run leaves the previous experiments and
    scorecard together, never some old, some new. Yields a function giving a path's final name."""
    out = args.out
    if out.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        raise SystemExit(f"attnlib: cannot write to the output folder {out}: it is replaced as a whole, so it "
                         f"must not be the current folder or hold it; give --out a folder of its own")
    _output_folder(out, ".", entries=entries)
    with replaced_folder(out, keep_others=True) as staging:
        args.out = staging
        try:
            yield lambda path: out / path.relative_to(staging) if path.is_relative_to(staging) else path
        finally:
            args.out = out


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
    parser.add_argument("--version", action="version", version=f"attnlib {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run an experiment and write its figures, tables and metrics",
                              description="Run an experiment at the paper's settings and write its figures "
                                          "(PNG and PDF), tidy tables (CSV) and metrics.json into OUT/EXPERIMENT/. The "
                                          "folder is built beside its final place and replaces any previous "
                                          "OUT/EXPERIMENT/ as a whole at the end, so an interrupted run leaves the "
                                          "previous folder or none.")
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
    run.add_argument("--store-dir", type=Path, default=None,
                     help="sst only: the folder stored runs are served from (default: $ATTNLIB_STORE_DIR, else the "
                          "checkout's results/sst when there is one)")
    run.add_argument("--retrain", action="store_true",
                     help="sst only: retrain the selected settings even where a stored run exists (for instance one "
                          "refused by its checks); slow settings only with --only")
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
                        help="folder holding train.txt, dev.txt, test.txt, used as given: never replaced by "
                             "another (default: $ATTNLIB_DATA_DIR, else ../shared/data/sst beside the checkout, "
                             "else the user cache, filled by a download from $ATTNLIB_SST_URL or Stanford)")
    verify.add_argument("--no-download", action="store_true", help="never download the data, only check")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; every expected failure is one ``attnlib: ...`` line on stderr and a non-zero exit
    (1, 2 for bad input, 130 when interrupted), never a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("attnlib: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = _expected_failure(error)
        if message is None:
            raise
        print(f"attnlib: {message}", file=sys.stderr)
        return 1


def _expected_failure(error: BaseException) -> str | None:
    """The one-line message for a failure a user can meet and fix (bad data, a diverging config, a folder
    that cannot be read or written, not enough memory), or None for anything else (a bug: its traceback
    is kept). A failed sweep task is judged by the failure inside it."""
    if isinstance(error, SweepError):
        return _expected_failure(error.error) if error.error is not None else None
    if isinstance(error, (DataError, TrainingDiverged)):
        return str(error)
    if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and "can't allocate memory" in str(error)):
        asked = re.search(r"tried to allocate (\d+) bytes", str(error))
        detail = f"{int(asked.group(1)) / 2**30:.1f} GiB asked for" if asked else str(error).splitlines()[0]
        return (f"not enough memory for this run ({detail}); reduce the sizes in the config "
                f"(e.g. model.d_embed, data.n_nontopic, data.n_train) or the number of seeds")
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return None


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        listed = {**{name: module.SUMMARY for name, module in EXPERIMENTS.items()}, "all": ALL_SUMMARY}
        width = max(map(len, listed))
        for name, summary in sorted(listed.items()):
            print(f"{name:<{width}}  {summary}")
        return 0
    if args.command == "verify-data":
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
    started = time.perf_counter()
    with cache.disabled() if args.no_cache else nullcontext():
        folder = _run_command(args)
    print(f"wrote {folder} in {time.perf_counter() - started:.0f} s")
    return 0


MAX_SEEDS = 100
"""The most seeds ``--seeds`` accepts for the experiments in :data:`SEED_BOUNDED` (the book uses 3 or 5)."""
SEED_BOUNDED = ("synthetic", "ablation", "beyond", "all")

BEYOND_SETS_ITSELF = ("train.epochs", "train.record_every", "model.head")
"""Config fields that every study of ``attnlib run beyond`` sets itself, so a config file's value would be ignored."""

def _prepare_run(args: argparse.Namespace) -> None:
    """Load ``--config`` into ``args.base`` and check ``--only``; a ValueError says what is wrong."""
    if args.seeds is not None and args.seeds > MAX_SEEDS and args.experiment in SEED_BOUNDED:
        raise ValueError(f"--seeds is at most {MAX_SEEDS} for {args.experiment} (got {args.seeds}): the seeds train "
                         f"together in one batched call, whose memory and time grow with their number")
    args.base = None
    if args.config is not None:
        takes = [name for name, module in EXPERIMENTS.items() if module.PRESET is not None]
        if args.experiment not in takes:
            raise ValueError(f"--config applies to {', '.join(takes)}, not to {args.experiment!r}")
        args.base = RunConfig.from_file(args.config, EXPERIMENTS[args.experiment].PRESET())
        if args.experiment == "beyond":
            named = [f"{section}.{name}" for section, fields in read_config_file(args.config).items()
                     if isinstance(fields, dict) for name in fields]
            fixed = [name for name in named if name in BEYOND_SETS_ITSELF]
            if fixed:
                raise ValueError(f"config file {args.config}: {', '.join(fixed)} cannot be changed for beyond: each of "
                                 f"its studies sets {', '.join(BEYOND_SETS_ITSELF)} itself (its own epoch count and "
                                 f"recording interval, and every head in turn)")
    if args.experiment == "sst" and args.seeds is not None and args.seeds > MAX_SST_SEEDS:
        raise ValueError(f"--seeds {args.seeds}: sst trains at most {MAX_SST_SEEDS} seeds (each seed is one more "
                         "model in the batch; the book uses 3)")
    if args.only:
        known = ["_".join(setting) for setting in SETTINGS]
        unknown = [name for name in args.only.split(",") if name not in known]
        if unknown:
            raise ValueError(f"--only names unknown SST settings {', '.join(map(repr, unknown))}; "
                             f"known settings: {', '.join(known)}")


def _bench_command(args: argparse.Namespace) -> int:
    """``attnlib bench``: the performance experiment (:mod:`attnlib.experiments.performance`) with its full
    report printed, written as OUT/bench/results.json and the scaling figure (with their provenance)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only commands that draw need them

    from attnlib.plots import save_figure  # noqa: PLC0415 - pyplot and seaborn take seconds to import: only commands that draw need them

    folder = _output_folder(args.out, "bench")
    started = time.perf_counter()
    result = EXPERIMENTS["performance"].run(quick=args.quick, reps=args.reps, log=lambda stage: print(
        f"[{time.perf_counter() - started:5.0f} s] {stage}", file=sys.stderr, flush=True))
    print(benchmark.format_report(result.results))
    record = result.provenance()
    with replaced_folder(folder) as staging:  # the folder as a whole, never half old, half new
        write_json(staging / "results.json", {**result.results, "provenance": record})
        for name, draw in result.figures().items():
            figure = draw()
            save_figure(figure, staging / name, provenance=record)
            plt.close(figure)
    print(f"wrote {folder} in {time.perf_counter() - started:.0f} s")
    return 0


def _cache_command(action: str) -> int:
    """``attnlib cache info`` and ``attnlib cache clear``."""
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
