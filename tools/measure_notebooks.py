"""Peak resident memory and wall time of each of the book's notebooks executed cold.

Each notebook is staged (tools/stage_book.py) and executed with nbclient's ``jupyter execute`` in its own
process, with an empty result cache of its own (``ATTNLIB_CACHE_DIR`` in a temporary folder): what a
Binder user who opens that one chapter in a fresh session runs. The peak is the largest resident set of
the process tree (the kernel included), as the kernel reports it to ``wait4``, which also gives the CPU
seconds of the tree (user + system): unlike the wall time, they hardly depend on what else the machine
runs. Binder gives a session about 2 GB; the book keeps every notebook under 1.5 GB.

    python tools/measure_notebooks.py                    # every notebook, in reading order
    python tools/measure_notebooks.py performance sst    # some of them
    python tools/measure_notebooks.py --out build/notebook_costs.json
    python tools/measure_notebooks.py --jobs 2           # two notebooks at a time (compare CPU seconds then)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_book import ROOT, stage  # noqa: E402

LIMIT_MB = 1536
"""The book's budget per notebook (1.5 GB), under Binder's 2 GB a session."""


def measure(notebook: Path, timeout: int = 3000) -> dict:
    """Execute ``notebook`` in place with an empty cache; its wall time, peak RSS (MB) and exit code."""
    jupyter = Path(sys.executable).with_name("jupyter-execute")
    command = [str(jupyter) if jupyter.exists() else "jupyter-execute", "--inplace", f"--timeout={timeout}",
               notebook.name]
    with tempfile.TemporaryDirectory(prefix="attnlib-cold-cache-") as cache:
        env = {**os.environ, "ATTNLIB_CACHE_DIR": cache}
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=notebook.parent, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        stderr = process.stderr.read() if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    return {"notebook": notebook.stem, "seconds": round(seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "exit_code": code, "error": stderr.strip().splitlines()[-1] if code and stderr.strip() else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names (e.g. performance); default: all")
    parser.add_argument("--stage", type=Path, default=ROOT / "build" / "measure", help="staging folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks executed at once, each in its own process with its own empty cache "
                             "(default 1; with more, the wall times include waiting for a core, the CPU seconds hardly)")
    args = parser.parse_args(argv)
    notebooks = stage(args.stage)
    if args.names:
        unknown = set(args.names) - {n.stem for n in notebooks}
        if unknown:
            print(f"attnlib: no notebook named {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        notebooks = [n for n in notebooks if n.stem in args.names]
    load = os.getloadavg()[0]
    print(f"{'notebook':<14} {'cold s':>8} {'CPU s':>8} {'peak RSS MB':>12}", flush=True)

    def report(row: dict) -> dict:
        flag = "" if row["exit_code"] == 0 else f"  FAILED: {row['error']}"
        flag += "  over 1.5 GB" if row["peak_rss_mb"] > LIMIT_MB else ""
        print(f"{row['notebook']:<14} {row['seconds']:>8.1f} {row['cpu_seconds']:>8.1f} {row['peak_rss_mb']:>12}{flag}",
              flush=True)
        return row

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda notebook: report(measure(notebook)), notebooks))
    summary = {"cpu_count": os.cpu_count(), "jobs": args.jobs, "load_at_start": load,
               "load_at_end": os.getloadavg()[0], "rows": rows}
    print(f"{os.cpu_count()} cores, load average {load:.1f} at the start, {summary['load_at_end']:.1f} at the end")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(args.stage, ignore_errors=True)
    return 0 if all(r["exit_code"] == 0 and r["peak_rss_mb"] <= LIMIT_MB for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
