"""Benchmarks of the count-matrix engine (issue 5): speed-up over the padded reference, roofline,
seeds batching and scaling with corpus size. Writes ``bench/results.json``.

    python bench/run.py [--quick] [--out PATH]

Every timing is a full-batch training epoch (forward, backward, update). The engine runs as
:func:`attnlib.train.train` runs it (span reduction for a fixed head, its CPU thread policy); the
padded reference (``bench/padded.py``) runs on whichever thread count is faster for it here. Engine
and reference are timed alternately in one process and compared by the median of the per-repetition
ratios. ``--quick`` runs every benchmark once at a tiny size (for the tests; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig, synthetic_preset
from attnlib.data import Corpus, Dataset, generate_synthetic
from attnlib.data.sst import SSTDataError, load_sst
from attnlib.model import (Batch, Params, attention_inputs, backward, first_layer, forward, init_params,
                           span_reduced)
from attnlib.train import apply_gradients, cpu_threads, epoch_size, frozen_groups, train
from padded import PaddedModel

Tensor = torch.Tensor
CPU = torch.device("cpu")
HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------------------
# Timing helpers
# ----------------------------------------------------------------------------------------------


def seconds(run: Callable[[], object], repeat: int = 1) -> float:
    """Wall-clock seconds per call of ``run``, over ``repeat`` calls in a row."""
    start = time.perf_counter()
    for _ in range(repeat):
        run()
    return (time.perf_counter() - start) / repeat


def best_of(run: Callable[[], object], reps: int, repeat: int = 1) -> float:
    """The fastest of ``reps`` timings: the least disturbed by other processes on a shared machine."""
    return min(seconds(run, repeat) for _ in range(reps))


class threads:
    """Run a block on ``count`` torch threads (None: leave the setting), restoring it after."""

    def __init__(self, count: int | None) -> None:
        self.count, self.before = count, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.count is not None:
            torch.set_num_threads(self.count)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


def thread_counts() -> list[int]:
    """1 and the default thread count (deduplicated)."""
    return sorted({1, torch.get_num_threads()})


# ----------------------------------------------------------------------------------------------
# The machine: peak dense matmul rate and copy bandwidth, measured here
# ----------------------------------------------------------------------------------------------


def matmul_gflops(dtype: torch.dtype, size: int, reps: int) -> float:
    """Dense matmul rate (GFLOP/s) of a size x size product, best over thread counts and repetitions."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    rates = []
    for count in thread_counts():
        with threads(count):
            rates.append(2 * size**3 / best_of(lambda: torch.mm(a, b, out=out), reps) / 1e9)
    return max(rates)


def copy_gbps(megabytes: int, reps: int) -> float:
    """Memory bandwidth (GB/s) of a large tensor copy (bytes read plus bytes written), best over threads."""
    source = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    rates = []
    for count in thread_counts():
        with threads(count):
            rates.append(2 * source.numel() * 4 / best_of(lambda: target.copy_(source), reps) / 1e9)
    return max(rates)


def machine_info(quick: bool) -> dict:
    """What ran the benchmark, and its measured peak rates."""
    size, megabytes, reps = (256, 16, 2) if quick else (2048, 512, 5)
    return {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "processor": _cpu_name(), "torch_threads": torch.get_num_threads(),
        "matmul_gflops_float32": matmul_gflops(torch.float32, size, reps),
        "matmul_gflops_float64": matmul_gflops(torch.float64, size, reps),
        "copy_gbps": copy_gbps(megabytes, reps),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ----------------------------------------------------------------------------------------------
# The engine, one epoch at a time, as train() runs it
# ----------------------------------------------------------------------------------------------


@dataclass
class EngineModel:
    """S seeds' models on the count-matrix engine, stepped exactly as :func:`attnlib.train.train` does."""

    kind: str
    params: Params
    batch: Batch
    lr: Tensor
    frozen: set[str]

    @classmethod
    def create(cls, model: ModelConfig, corpora: Sequence[Corpus], n_classes: int, dtype: torch.dtype,
               lr: float = 0.1) -> EngineModel:
        batch = Batch.from_corpora(corpora, dtype, CPU)
        params = init_params(model, batch.vocab_size, n_classes, range(len(corpora)), dtype, CPU)
        frozen = frozen_groups(model, TrainConfig(lr=lr))
        if "head" in frozen:
            params = span_reduced(params)
        return cls(model.head, params, batch, torch.full((len(corpora),), lr, dtype=dtype), frozen)

    def epochs(self, count: int) -> float:
        """Train ``count`` epochs as train() does (no autograd, its thread policy); seconds per epoch."""
        with torch.no_grad(), cpu_threads(CPU, epoch_size(self.params, self.batch)):
            return seconds(self._epoch, count)

    def _epoch(self) -> None:
        """Forward, backward and update of every seed."""
        fwd = forward(self.kind, self.params, self.batch, attention_inputs(self.params))
        apply_gradients(self.params, backward(self.kind, self.params, self.batch, fwd, self.frozen), self.lr,
                        self.frozen)

    def logits(self) -> Tensor:
        with torch.no_grad():
            return forward(self.kind, self.params, self.batch).logits

    def traffic(self) -> tuple[float, float]:
        """(flops, bytes) one epoch must at least do and move: see :func:`epoch_traffic`."""
        return epoch_traffic(self.params, self.batch)


def epoch_traffic(params: Params, batch: Batch) -> tuple[float, float]:
    """A lower bound on one epoch's work for the engine's formulation.

    Flops: the two sparse products (2 nnz (width + 1) each) and, when E is carried in full and
    projected, the three rank-K1 products with E (R = E U1, dU1 = E^T dR, E += dR U1^T).
    Bytes: each count matrix read once (values, column indices, row pointers), every carried
    per-word parameter read and written once (scores; R and Z, or E), and the per-sentence
    (n, width + 1) products written and read once each way.
    """
    item = params.query.element_size()
    nnz = batch.counts.values().numel()
    rows = batch.counts.shape[0] + batch.counts.shape[1] + 2
    index = batch.counts.col_indices().element_size()
    width = first_layer(params.head).shape[2] if params.projects else params.embeddings.shape[2]
    flops = 2 * 2 * nnz * (width + 1)
    carried = [params.word_scores()]
    if params.coords is not None:
        carried += [params.projected, params.coords]
    else:
        carried += [params.embeddings] + list(params.head.values())
        if params.projects:
            flops += 3 * 2 * params.embeddings.numel() * width
    bytes_ = 2 * (nnz * (item + index) + rows * index)
    bytes_ += sum(2 * t.numel() * item for t in carried)
    bytes_ += 4 * batch.counts.shape[0] * (width + 1) * item
    return float(flops), float(bytes_)


def roofline(flops: float, bytes_: float, seconds_: float, machine: dict, dtype: torch.dtype) -> dict:
    """The roofline bound max(flops / peak, bytes / bandwidth) and the fraction of it achieved."""
    peak = machine["matmul_gflops_float32" if dtype == torch.float32 else "matmul_gflops_float64"] * 1e9
    bound = max(flops / peak, bytes_ / (machine["copy_gbps"] * 1e9))
    return {"flops": flops, "bytes": bytes_, "bound_ms": bound * 1e3, "achieved_ms": seconds_ * 1e3,
            "roofline_fraction": bound / seconds_}


# ----------------------------------------------------------------------------------------------
# SST2: engine against the padded reference
# ----------------------------------------------------------------------------------------------


def sst2_data(quick: bool) -> tuple[Dataset, str]:
    """SST2 (its first 300 training sentences when quick); a random stand-in of SST2's vocabulary size
    when the files are absent, for --quick only."""
    try:
        data, source = load_sst("SST2", download=False), "SST2"
    except SSTDataError:
        if not quick:
            raise
        data, source = _random_dataset(17440, 2, 300, np.random.default_rng(0)), "random stand-in (SST2 not found)"
    if quick:
        train_split = data.train
        small = Corpus(train_split.sentences[:300], train_split.labels[:300], train_split.vocab_size)
        data = Dataset(data.name, data.vocab, data.n_classes, {"train": small, "test": data.test})
    return data, source


def _random_dataset(vocab_size: int, n_classes: int, n: int, rng: np.random.Generator) -> Dataset:
    sentences = [rng.integers(1, vocab_size, size=rng.integers(3, 30)) for _ in range(n)]
    corpus = Corpus(sentences, rng.integers(0, n_classes, size=n), vocab_size)
    return Dataset("random", [f"w{i}" for i in range(vocab_size)], n_classes, {"train": corpus, "test": corpus})


def agree(engine: EngineModel, reference: PaddedModel, epochs: int) -> float:
    """Train both a few epochs from the same start; the largest logit gap relative to the largest logit."""
    for _ in range(epochs):
        engine.epochs(1)
        reference.epoch()
    ours, theirs = engine.logits()[0], reference.logits()
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))


def reference_threads(reference: PaddedModel) -> int:
    """The thread count on which the reference runs faster here (each timed once after a warm-up)."""
    timings = {}
    for count in thread_counts():
        with threads(count):
            reference.epoch()
            timings[count] = seconds(reference.epoch)
    return min(timings, key=timings.get)


def sst2_case(head: str, data: Dataset, machine: dict, quick: bool) -> dict:
    """One SST2 head in the paper's setting (d_e = 200, d_k = 10, float32, lr 0.1): agreement,
    alternating timings, roofline."""
    model = ModelConfig(head=head, d_embed=200, d_key=10)
    dtype = torch.float32
    engine = EngineModel.create(model, [data.train], data.n_classes, dtype)
    reference = PaddedModel.from_params(head, engine.params, 0, data.train, lr=0.1, train_head=head != "FC")
    gap = agree(engine, reference, epochs=1 if quick else 3)
    assert gap < 1e-3, f"SST2 Attn-{head}: engine and padded reference disagree after training (gap {gap:.2e})"
    ref_threads = reference_threads(reference)
    reps, block = (1, 2) if quick else (5, 20)
    engine_times, reference_times = [], []
    for _ in range(reps):
        engine_times.append(engine.epochs(block))
        with threads(ref_threads):
            reference_times.append(seconds(reference.epoch))
    ratios = [r / e for r, e in zip(reference_times, engine_times)]
    engine_s = statistics.median(engine_times)
    return {
        "head": head, "sentences": len(data.train), "nonzeros": int(engine.batch.counts.values().numel()),
        "engine_ms": engine_s * 1e3, "engine_ms_best": min(engine_times) * 1e3,
        "reference_ms": statistics.median(reference_times) * 1e3, "reference_threads": ref_threads,
        "speedup_median": statistics.median(ratios), "speedups": ratios, "agreement_gap": gap,
        **roofline(*engine.traffic(), min(engine_times), machine, dtype),
    }


# ----------------------------------------------------------------------------------------------
# Synthetic preset: seeds batched, and scaling with the corpus size
# ----------------------------------------------------------------------------------------------


def train_epoch_seconds(head: str, datasets: Sequence[Dataset], epochs: tuple[int, int], reps: int) -> float:
    """Seconds per epoch of train() on the synthetic preset (all recording on), set-up cancelled out by
    timing two run lengths."""
    base = synthetic_preset(head)
    seeds = list(range(len(datasets)))

    def run(n: int) -> Callable[[], object]:
        return lambda: train(base.model, TrainConfig(epochs=n), datasets, seeds,
                             trace_words=datasets[0].topic_words, quiet=True)
    short, long = (best_of(run(n), reps) for n in epochs)
    return max(long - short, 1e-9) / (epochs[1] - epochs[0])


def seeds_table(quick: bool) -> list[dict]:
    """Per-epoch time of train() for S seeds at once, per head, and the time per seed."""
    counts, heads = ((1, 2), ("FC",)) if quick else ((1, 5, 20), ("FC", "TC", "TL"))
    epochs, reps = ((2, 6), 1) if quick else ((20, 220), 3)
    preset = synthetic_preset().data
    data = preset if not quick else SyntheticDataConfig(n_nontopic=300, n_train=60, n_test=20)
    datasets = [generate_synthetic(data, seed) for seed in range(max(counts))]
    rows = []
    for head in heads:
        for count in counts:
            epoch_s = train_epoch_seconds(head, datasets[:count], epochs, reps)
            rows.append({"head": head, "seeds": count, "epoch_ms": epoch_s * 1e3, "ms_per_seed": epoch_s * 1e3 / count})
    return rows


def seeds_ratio(rows: list[dict], head: str) -> float:
    """Time of an epoch of the most seeds over that of one seed."""
    mine = sorted((r for r in rows if r["head"] == head), key=lambda r: r["seeds"])
    return mine[-1]["epoch_ms"] / mine[0]["epoch_ms"]


def corpus_table(quick: bool) -> list[dict]:
    """Engine epoch time (Attn-FC, synthetic preset model, one seed) against the number of tokens."""
    grid = ([(200, 10), (400, 40)] if quick else
            [(10**3, 10), (10**3, 200), (10**4, 10), (10**4, 50), (10**4, 200),
             (10**5, 10), (10**5, 50), (10**5, 200), (10**6, 10)])
    model = synthetic_preset().model
    rows = []
    for sentences, length in grid:
        config = SyntheticDataConfig(n_train=sentences, n_test=1, m=length)
        corpus = generate_synthetic(config, 0).train
        engine = EngineModel.create(model, [corpus], config.n_topics, torch.float64)
        engine.epochs(1)
        reps = 1 if quick else 5 if sentences * length <= 10**6 else 3
        repeat = max(1, min(20, 10**6 // (sentences * length)))
        tokens = int(corpus.lengths.sum())
        rows.append({"sentences": sentences, "length": length + 1, "tokens": tokens,
                     "nonzeros": int(engine.batch.counts.values().numel()),
                     "epoch_ms": min(engine.epochs(repeat) for _ in range(reps)) * 1e3})
    return rows


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


TARGETS = {
    "sst2_fc_speedup_vs_padded": (">=", 150.0),
    "sst2_tc_speedup_vs_padded": (">=", 30.0),
    "sst2_fc_roofline_fraction": (">=", 0.2),
    "synthetic_seeds20_over_seeds1_time": ("<=", 3.0),
}


def verdicts(results: dict) -> dict[str, bool]:
    """Whether each issue target is met by the measured value."""
    check = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t}
    return {key: bool(check[op](results[key], bound)) for key, (op, bound) in TARGETS.items()}


def print_table(title: str, rows: list[dict], columns: Sequence[str]) -> None:
    print(f"\n{title}")
    print("  " + "  ".join(f"{c:>14}" for c in columns))
    for row in rows:
        print("  " + "  ".join(f"{_fmt(row[c]):>14}" for c in columns))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run(quick: bool) -> dict:
    """Every benchmark; the results as one JSON-ready dictionary."""
    started = time.perf_counter()
    machine = machine_info(quick)
    print(f"machine: {machine['processor']}, torch {machine['torch']}, {machine['torch_threads']} threads; "
          f"matmul {machine['matmul_gflops_float32']:.1f} GFLOP/s (float32), "
          f"{machine['matmul_gflops_float64']:.1f} (float64); copy {machine['copy_gbps']:.1f} GB/s")
    data, source = sst2_data(quick)
    sst = [sst2_case(head, data, machine, quick) for head in ("FC", "TC")]
    print_table(f"{source}: one training epoch, engine vs padded reference (d_e = 200, d_k = 10, float32)", sst,
                ["head", "engine_ms", "reference_ms", "speedup_median", "bound_ms", "roofline_fraction"])
    seeds = seeds_table(quick)
    print_table("synthetic preset: train() epoch for S seeds at once", seeds,
                ["head", "seeds", "epoch_ms", "ms_per_seed"])
    corpus = corpus_table(quick)
    slope = loglog_slope([r["tokens"] for r in corpus], [r["epoch_ms"] for r in corpus])
    print_table(f"engine epoch vs corpus size (Attn-FC, 1 seed): log-log slope {slope:.3f}", corpus,
                ["sentences", "length", "tokens", "epoch_ms"])
    by_head = {row["head"]: row for row in sst}
    results = {
        "quick": quick, "sst2_source": source,
        "sst2_fc_speedup_vs_padded": by_head["FC"]["speedup_median"],
        "sst2_tc_speedup_vs_padded": by_head["TC"]["speedup_median"],
        "sst2_fc_roofline_fraction": by_head["FC"]["roofline_fraction"],
        "sst2_tc_roofline_fraction": by_head["TC"]["roofline_fraction"],
        "synthetic_seeds20_over_seeds1_time": seeds_ratio(seeds, "FC"),
        "epoch_time_vs_tokens_exponent": slope,
        "sst2": sst, "seeds": seeds, "corpus_size": corpus, "machine": machine,
    }
    results["targets_met"] = verdicts(results)
    results["seconds"] = time.perf_counter() - started
    print("\ntargets: " + ", ".join(f"{k} {'met' if ok else 'NOT met'} ({results[k]:.3g})"
                                    for k, ok in results["targets_met"].items()))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark once at a tiny size (for tests)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="where to write the JSON results")
    args = parser.parse_args(argv)
    results = run(args.quick)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
