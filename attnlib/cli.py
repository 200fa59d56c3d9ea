"""Command line: regenerate any figure, table and metrics file without the book.

    attnlib run synthetic --seeds 5 --out results/
    attnlib list
    attnlib verify-data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # the command line only writes files

EXPERIMENTS: dict[str, tuple[str, Callable[[argparse.Namespace], Path]]] = {}


def experiment(name: str, summary: str):
    """Register ``function(args) -> output folder`` as ``attnlib run NAME``."""
    def register(function: Callable[[argparse.Namespace], Path]) -> Callable[[argparse.Namespace], Path]:
        EXPERIMENTS[name] = (summary, function)
        return function
    return register


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


def _write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (temp file + rename), so a killed run never leaves half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(temporary, path)


@experiment("synthetic", "F1-F3: SEN curves, loss curves and final score/norm distributions on the synthetic data")
def run_synthetic_command(args: argparse.Namespace) -> Path:
    from attnlib.experiments import run_synthetic, synthetic_checks
    from attnlib.plots import SYNTHETIC_FIGURES, save_figure

    folder = _output_folder(args.out, "synthetic")
    result = run_synthetic(seeds=range(args.seeds), quiet=args.quiet)
    tables = {"curves": result.curves(), "losses": result.losses(), "final_words": result.final_words(),
              "summary": result.summary(), "checks": synthetic_checks(result)}
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
    for name, plot in SYNTHETIC_FIGURES.items():
        for suffix, single_run in (("", False), ("_single_run", True)):
            save_figure(plot(result, single_run=single_run), folder / f"{name}{suffix}")
    _write_json(folder / "metrics.json", result.metrics())
    return folder


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
    run.add_argument("experiment", choices=sorted(EXPERIMENTS), help="which experiment (see 'attnlib list')")
    run.add_argument("--seeds", type=_positive_int, default=5,
                     help="number of seeds; seeds 0..N-1 are used (default: 5, as in the book)")
    run.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: ./results)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    commands.add_parser("list", help="list the experiments 'attnlib run' knows")

    verify = commands.add_parser("verify-data", help="check the SST files (location and sha256 checksums)")
    verify.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding train.txt, dev.txt, test.txt (default: $ATTNLIB_DATA_DIR, "
                             "then ../shared/data/sst beside the checkout, then the user cache)")
    verify.add_argument("--no-download", action="store_true", help="never download the data, only check")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        width = max(map(len, EXPERIMENTS))
        for name, (summary, _) in sorted(EXPERIMENTS.items()):
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
    started = time.perf_counter()
    folder = EXPERIMENTS[args.experiment][1](args)
    print(f"wrote {folder} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
