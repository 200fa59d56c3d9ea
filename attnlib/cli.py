"""Command line: regenerate any figure, table and metrics file without the book.

    attnlib run synthetic --seeds 5 --out out/
    attnlib list
    attnlib verify-data
    attnlib store verify
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

from attnlib import __version__, benchmark, cache, scorecard
from attnlib.config import RunConfig, read_config_file
from attnlib.data import trec as trec_data
from attnlib.data import verify_data
from attnlib.data.download import DataError
from attnlib.experiments import EXPERIMENTS, trec
from attnlib.experiments.base import Experiment, Option, checks_table, positive_int
from attnlib.experiments.sst.settings import SETTINGS as SST_SETTINGS
from attnlib.experiments.sst.storage import StoredRunError, regenerate_manifest, store_dir
from attnlib.experiments.sst.verification import (
    ACCURACY_TOLERANCE,
    EPOCH_TOLERANCE,
    TIE_RTOL,
    compare_stores,
    verify_stored,
)
from attnlib.files import check_replaceable, replaced_folder, write_json, write_text
from attnlib.scorecard import assemble
from attnlib.sweep import ClusterError, SweepError
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
    """Write an experiment's result into ``folder``: its tables, ``checks.csv`` (every check with its
    verdict), its texts, figures, metrics and provenance."""
    tables = {**result.tables(), "checks": checks_table(result.checks())}
    _write_outputs(folder, tables, result.figures(), result.metrics(), result.provenance(), texts=result.texts())


def _run_experiment(name: str, args: argparse.Namespace):
    """``attnlib run NAME`` for a registered experiment: run it with the options it declares, write
    OUT/NAME/, return its result."""
    entry = EXPERIMENTS[name]
    folder = _output_folder(args.out, name)
    seeds = range(args.seeds) if args.seeds and entry.seeds else None
    options = {option.dest: getattr(args, option.dest) for option in entry.options}
    result = entry.run(config=args.base if name == args.experiment else None, seeds=seeds, quiet=args.quiet, **options)
    _write_result(folder, result)
    return result


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


def _options() -> dict[str, tuple[Option, list[str]]]:
    """Every experiment's own command-line options: flag -> (the option, the experiments that declare it)."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for name, entry in EXPERIMENTS.items():
        for option in entry.options:
            found.setdefault(option.flag, (option, []))[1].append(name)
    return found


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
    takes_seeds = [f"{len(entry.seeds)} for {name}" for name, entry in EXPERIMENTS.items() if entry.seeds]
    run.add_argument("--seeds", type=positive_int, default=None,
                     help=f"number of seeds; seeds 0..N-1 are used (default: as in the book, {', '.join(takes_seeds)})")
    run.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")
    run.add_argument("--quiet", action="store_true", help="no progress bar on a terminal, no progress lines elsewhere")
    configurable = [name for name, entry in EXPERIMENTS.items() if entry.preset is not None]
    run.add_argument("--config", type=Path, default=None,
                     help=f"{', '.join(configurable)}: a JSON or TOML file of fields to change in the experiment's "
                          "base config, e.g. {\"train\": {\"lr\": 0.05}, \"model\": {\"d_embed\": 20}}")
    run.add_argument("--no-cache", action="store_true",
                     help="retrain instead of serving cached training results (see 'attnlib cache info')")
    for option, users in _options().values():
        option.add_to(run, users)


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
    bench.add_argument("--reps", type=positive_int, default=5,
                       help="alternating repetitions of each engine-vs-reference timing (default 5)")
    bench.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")

    verify = commands.add_parser("verify-data", help="check a dataset's files (location, sha256 checksums, parsing)")
    verify.add_argument("dataset", nargs="?", choices=("sst", "trec"), default="sst",
                        help="which dataset (default: sst)")
    verify.add_argument("--data-dir", type=Path, default=None,
                        help="the folder holding the files, used as given: never replaced by another. SST: "
                             "train.txt, dev.txt, test.txt (default: $ATTNLIB_DATA_DIR, else ../shared/data/sst "
                             "beside the checkout, else the user cache, filled by a download from $ATTNLIB_SST_URL "
                             "or Stanford). TREC: train_5500.label, TREC_10.label (default: $ATTNLIB_TREC_DIR, "
                             "else ../shared/data/trec, else the user cache, filled by a download)")
    verify.add_argument("--no-download", action="store_true", help="never download the data, only check")

    card = commands.add_parser("scorecard", help="check the stored scorecard (results/scorecard.json) against a fresh "
                                                 "one, or rewrite it",
                               description="Compute the scorecard at the book's seeds (training what the result cache "
                                           "lacks: minutes) and compare it, every cell a reader sees and the runs "
                                           "behind it, with the stored one the book's introduction shows; exit 1 on "
                                           "any difference.")
    card.add_argument("--store", action="store_true",
                      help="write the fresh scorecard as the stored one instead (after a deliberate change)")
    card.add_argument("--quiet", action="store_true", help="no progress bar on a terminal, no progress lines elsewhere")

    store = commands.add_parser("store", help="check the stored SST or TREC runs (results/sst, results/trec), or "
                                              "record their checksums",
                                description="Check the stored SST or TREC runs (see "
                                            "attnlib.experiments.sst.verification).")
    store.add_argument("action", choices=("manifest", "verify", "compare"),
                       help="manifest: record the sha256 of the stored files now (after a deliberate re-store); "
                            "verify: check every stored run; compare: a retrained store (FRESH) against the store")
    store.add_argument("fresh", nargs="?", type=Path, help="compare only: the folder --store wrote (STORE/sst)")
    store.add_argument("--store-dir", type=Path, default=None, help="the store (default: $ATTNLIB_STORE_DIR, "
                                                                     "else the checkout's results/sst; TREC's: "
                                                                     "results/trec)")
    store.add_argument("--only", default=None, help="comma-separated settings, e.g. SST2_FC_default or "
                                                    "TREC_TC_default")
    store.add_argument("--replay", action="store_true", help="verify only: also replay the first epochs")
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
    if isinstance(error, (DataError, TrainingDiverged, ClusterError)):
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
        listed = {**{name: entry.summary for name, entry in EXPERIMENTS.items()}, "all": ALL_SUMMARY}
        width = max(map(len, listed))
        for name, summary in sorted(listed.items()):
            print(f"{name:<{width}}  {summary}")
        return 0
    if args.command == "verify-data":
        verify_dataset = trec_data.verify_data if args.dataset == "trec" else verify_data
        try:
            folder = verify_dataset(args.data_dir, download=not args.no_download)
        except DataError as error:
            print(f"attnlib: {error}", file=sys.stderr)
            return 1
        print(f"{args.dataset.upper()} data verified in {folder}")
        return 0
    if args.command == "store":
        return store_command(args)
    if args.command == "scorecard":
        return _scorecard_command(args)
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


def _prepare_run(args: argparse.Namespace) -> None:
    """Refuse what the chosen experiments do not use (another experiment's options, ``--seeds`` beyond
    their bound, ``--config`` or config fields they set themselves), check their own options and load
    ``--config`` into ``args.base``; a ValueError says what is wrong, in one line."""
    entries: list[Experiment] = list(EXPERIMENTS.values()) if args.experiment == "all" else [EXPERIMENTS[args.experiment]]
    for flag, (option, users) in _options().items():
        if getattr(args, option.dest) != option.default and not any(e.name in users for e in entries):
            raise ValueError(f"{flag} applies to {', '.join(users)}, not to {args.experiment}")
    if args.seeds is not None:
        takers = [entry for entry in entries if entry.seeds]
        if not takers:
            users = [name for name, entry in EXPERIMENTS.items() if entry.seeds]
            raise ValueError(f"--seeds applies to {', '.join(users)}, not to {args.experiment}: it trains no seeds")
        for entry in takers:
            if args.seeds > entry.max_seeds:
                raise ValueError(f"--seeds is at most {entry.max_seeds} for {entry.name} (got {args.seeds}): "
                                 f"{entry.name} trains at most {entry.max_seeds} seeds, together in one batched call, "
                                 f"whose memory and time grow with their number")
    args.base = None
    if args.config is not None:
        takes = [name for name, entry in EXPERIMENTS.items() if entry.preset is not None]
        if args.experiment not in takes:
            raise ValueError(f"--config applies to {', '.join(takes)}, not to {args.experiment!r}")
        entry = EXPERIMENTS[args.experiment]
        args.base = RunConfig.from_file(args.config, entry.preset())
        named = [f"{section}.{name}" for section, fields in read_config_file(args.config).items()
                 if isinstance(fields, dict) for name in fields]
        fixed = [name for name in named if name in entry.sets_itself]
        if fixed:
            raise ValueError(f"config file {args.config}: {', '.join(fixed)} cannot be changed for {entry.name}: it sets "
                             + "; ".join(f"{name} itself ({entry.sets_itself[name]})" for name in fixed))
    for entry in entries:
        if entry.check_options is not None:
            entry.check_options(**{option.dest: getattr(args, option.dest) for option in entry.options})


STORED_SETTINGS = SST_SETTINGS + tuple((trec.KIND, head, trec.VARIANT) for head in sorted(trec.STORED_HEADS))
"""Every setting a store may hold: SST's and TREC's slow heads (same format, same checks)."""


def _store_settings(only: str | None):
    """The settings ``--only`` names (None: every stored one)."""
    names = {"_".join(s): s for s in STORED_SETTINGS}
    if only is None:
        return None
    unknown = [n for n in only.split(",") if n not in names]
    if unknown:
        raise StoredRunError(f"unknown stored settings {', '.join(unknown)}; known: {', '.join(names)}")
    return [names[n] for n in only.split(",")]


def store_command(args: argparse.Namespace) -> int:
    """``attnlib store manifest|verify|compare`` (``args``: action, fresh, store_dir, only, replay); the exit status."""
    try:
        if args.action == "manifest":
            print(f"wrote {regenerate_manifest(args.store_dir)}")
            return 0
        if args.action == "compare":
            if args.fresh is None:
                raise StoredRunError("compare needs the folder of the retrained runs")
            table = compare_stores(args.fresh, args.store_dir, _store_settings(args.only))
            print(table.to_string(index=False))
            drift = table[~table["pass"]]
            for row in drift.itertuples():
                print(f"attnlib: drift: {row.setting} seed {row.seed} differs from the store beyond the tolerances "
                      f"(epochs within {EPOCH_TOLERANCE} or best epochs tied within {TIE_RTOL:g} of the dev loss, "
                      f"test accuracy within {100 * ACCURACY_TOLERANCE:.1f} point)",
                      file=sys.stderr)
            return 1 if len(drift) else 0
        found, where = store_dir(args.store_dir)
        settings = _store_settings(args.only) or [s for s in STORED_SETTINGS
                                                   if found and (found / f"{'_'.join(s)}.npz").is_file()]
        if not settings:  # nothing checked is not a pass
            raise StoredRunError(f"no stored run to verify in {where} (stored runs are named like "
                                 f"{'_'.join(STORED_SETTINGS[0])}.npz)")
        failures = 0
        for setting in settings:
            try:
                report = verify_stored(*setting, folder=args.store_dir, replay=args.replay)
            except StoredRunError as error:
                print(f"attnlib: {error}", file=sys.stderr)
                failures += 1
                continue
            for name, check in report["checks"].items():
                print(f"{report['setting']}: {name}: {check['status']}: {check['detail']}")
            failures += not report["ok"]
        print(f"{len(settings) - failures} of {len(settings)} stored runs in {where} verified")
        return 1 if failures else 0
    except StoredRunError as error:
        print(f"attnlib: {error}", file=sys.stderr)
        return 1


def _scorecard_command(args: argparse.Namespace) -> int:
    """``attnlib scorecard [--store]``: the fresh scorecard compared with the stored one, or stored; the exit status."""
    fresh = scorecard.run_scorecard(quiet=args.quiet)
    if args.store:
        print(f"wrote {scorecard.store(fresh)}")
        return 0
    try:
        scorecard.require_stored_current(fresh)
    except scorecard.StoredScorecardError as error:
        print(f"attnlib: {error}", file=sys.stderr)
        return 1
    print(f"the stored scorecard {scorecard.stored_path()} is this code's: {len(fresh.table)} rows agree")
    return 0


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
