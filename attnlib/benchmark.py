"""Benchmarks of the count-matrix engine: speed-up over the padded reference, roofline,
seeds batching (each seed on its own corpus, and several seeds on one SST2 corpus) and scaling
with corpus size.

``attnlib bench`` (``make bench``, ``bench/run.py``) prints these and writes ``bench/results.json``; the book's
performance appendix calls the same functions at build time, with fewer repetitions.

Every timing is a full-batch training epoch (forward, backward, update). The engine runs as
:func:`attnlib.train.train` runs it (span reduction for a fixed head, its CPU thread policy); the
padded reference (:class:`attnlib.padded_reference.PaddedModel`) runs on whichever thread count is faster
for it here. Engine and reference are timed alternately in one process and compared by the median
of the per-repetition ratios, so a burst of load from another process disturbs both alike.
``quick`` runs every benchmark once at a tiny size (for the tests; its numbers mean nothing).
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig, synthetic_preset
from attnlib.data import Corpus, Dataset, generate_synthetic
from attnlib.data.sst import SSTDataError, load_sst
from attnlib.device import default_device
from attnlib.epoch_cost import cost_model_ms
from attnlib.model import Batch, Params, attention_inputs, first_layer, forward, init_params, span_reduced
from attnlib.padded_reference import PaddedModel
from attnlib.train import cpu_threads, epoch_size, frozen_groups, train, update

Tensor = torch.Tensor

SST2_MODEL = ModelConfig(d_embed=200, d_key=10)
"""The paper's SST model (the head is set per case): d_e = 200, d_k = 10."""
SEED_COUNTS = (1, 5, 20)
"""Seeds trained at once in the seeds table."""
BOOK_SEEDS = 5
"""Seeds of the synthetic chapters' runs: the seeds table's row the headline engine time is read from."""
SHARED_SEEDS = 3
"""Seeds on the one SST2 corpus in the shared-corpus table (as the SST chapter trains them)."""
SCALING_GRID = ((10**3, 10), (10**3, 200), (10**4, 10), (10**4, 50), (10**4, 200),
                (10**5, 10), (10**5, 50), (10**5, 200), (10**6, 10))
"""(sentences, non-topic words per sentence) of the scaling table: 10^3 to 10^6 sentences, length 11 to 201."""
TARGETS = {
    "sst2_fc_speedup_vs_padded": (">=", 150.0),
    "sst2_tc_speedup_vs_padded": (">=", 30.0),
    "sst2_fc_roofline_fraction": (">=", 0.2),
    "synthetic_seeds20_over_seeds1_time": ("<=", 3.0),
}
"""The issue's targets: result key -> (comparison, bound)."""


# ----------------------------------------------------------------------------------------------
# Timing helpers
# ----------------------------------------------------------------------------------------------


def release_memory() -> None:
    """Hand the memory of freed objects back to the operating system (glibc's ``malloc_trim``; elsewhere
    only a garbage collection). Freed small blocks otherwise stay resident in the allocator's arenas (one
    per torch thread), and the next benchmark's peak comes on top of them."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock timings include it (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(run: Callable[[], object], repeat: int = 1, device: torch.device | None = None) -> float:
    """Wall-clock seconds per call of ``run``, over ``repeat`` calls in a row."""
    device = device or torch.device("cpu")
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeat):
        run()
    synchronize(device)
    return (time.perf_counter() - start) / repeat


def best_of(run: Callable[[], object], reps: int, repeat: int = 1, device: torch.device | None = None) -> float:
    """The fastest of ``reps`` timings: the least disturbed by other processes on a shared machine."""
    return min(seconds(run, repeat, device) for _ in range(reps))


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


LARGE_CORPUS_TOKENS = 10**5
"""The corpus sizes (in tokens) from which the book reads the epoch time's slope on large corpora: the
benchmark's sizes from 10^5 tokens up."""


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


# ----------------------------------------------------------------------------------------------
# The machine: peak dense matmul rate and copy bandwidth, measured here
# ----------------------------------------------------------------------------------------------


def matmul_gflops(dtype: torch.dtype, size: int, reps: int, device: torch.device) -> float:
    """Dense matmul rate (GFLOP/s) of a size x size product, best over thread counts and repetitions."""
    a, b = (torch.randn(size, size, dtype=dtype, device=device) for _ in range(2))
    out = torch.empty(size, size, dtype=dtype, device=device)
    rates = []
    for count in thread_counts():
        with threads(count):
            rates.append(2 * size**3 / best_of(lambda: torch.mm(a, b, out=out), reps, device=device) / 1e9)
    return max(rates)


def copy_gbps(megabytes: int, reps: int, device: torch.device) -> float:
    """Memory bandwidth (GB/s) of a large tensor copy (bytes read plus bytes written), best over threads."""
    source = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    rates = []
    for count in thread_counts():
        with threads(count):
            rates.append(2 * source.numel() * 4 / best_of(lambda: target.copy_(source), reps, device=device) / 1e9)
    return max(rates)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(quick: bool = False, reps: int = 5, device: torch.device | None = None) -> dict:
    """What runs the benchmark (device, CPU, threads, versions) and its measured peak rates."""
    device = device or default_device()
    # 128 MB copied into 128 MB: several times any CPU's last-level cache, so the copy streams from memory,
    # while the notebook that measures it stays far below the book's 1.5 GB (512 MB each took it over)
    size, megabytes = (256, 16) if quick else (2048, 128)
    reps = 2 if quick else reps
    return {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "processor": cpu_name(), "torch_threads": torch.get_num_threads(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cuda_available": torch.cuda.is_available(),
        "matmul_gflops_float32": matmul_gflops(torch.float32, size, reps, device),
        "matmul_gflops_float64": matmul_gflops(torch.float64, size, reps, device),
        "copy_gbps": copy_gbps(megabytes, reps, device),
    }


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
    device: torch.device

    @classmethod
    def create(cls, model: ModelConfig, corpora: Sequence[Corpus], n_classes: int, dtype: torch.dtype,
               lr: float = 0.1, device: torch.device | None = None, share: bool = True) -> EngineModel:
        """Seed k on ``corpora[k]``; ``share=False`` stacks identical corpora block-diagonally anyway."""
        device = device or default_device()
        batch = Batch.from_corpora(corpora, dtype, device, share=share)
        params = init_params(model, batch.vocab_size, n_classes, range(len(corpora)), dtype, device)
        frozen = frozen_groups(model, TrainConfig(lr=lr))
        if "head" in frozen:
            params = span_reduced(params)
        lr_ = torch.full((len(corpora),), lr, dtype=dtype, device=device)
        return cls(model.head, params, batch, lr_, frozen, device)

    def epochs(self, count: int) -> float:
        """Train ``count`` epochs as train() does (no autograd, its thread policy); seconds per epoch."""
        with torch.no_grad(), cpu_threads(self.device, epoch_size(self.params, self.batch)):
            return seconds(self._epoch, count, self.device)

    def _epoch(self) -> None:
        """Forward, backward and update of every seed."""
        fwd = forward(self.kind, self.params, self.batch, attention_inputs(self.params, self.batch))
        update(self.kind, self.params, self.batch, fwd, self.frozen, self.lr)

    def logits(self) -> Tensor:
        with torch.no_grad():
            return forward(self.kind, self.params, self.batch).logits

    def product_seconds(self, repeat: int = 20) -> float:
        """Seconds of the epoch's two sparse products alone (``counts @ [e R | e]`` and its transpose
        times the per-sentence gradient), at this model's shapes: the part of an epoch the sparse
        kernel sets, whatever the rest of the engine does."""
        batch, width = self.batch, self.params.word_vectors().shape[2] + 1
        words = batch.operand(batch.vocab_size, width, self.lr).uniform_()
        sentences = batch.operand(batch.n_sentences, width, self.lr).uniform_()

        def products() -> None:
            batch.seeds_product(False, words), batch.seeds_product(True, sentences)
        with torch.no_grad(), cpu_threads(self.device, epoch_size(self.params, batch)):
            products()  # warm the buffers
            return seconds(products, repeat, self.device)

    def traffic(self) -> tuple[float, float]:
        """(flops, bytes) one epoch must at least do and move: see :func:`epoch_traffic`."""
        return epoch_traffic(self.params, self.batch)


def epoch_traffic(params: Params, batch: Batch) -> tuple[float, float]:
    """A lower bound on one epoch's work for the engine's formulation.

    Flops: the two sparse products (2 nnz (width + 1) each, per seed) and, when E is carried in full
    and projected, the three rank-K1 products with E (R = E U1, dU1 = E^T dR, E += dR U1^T).
    Bytes: each count matrix read once (values, column indices, row pointers; one corpus's for all
    seeds when they share it), every carried per-word parameter read and written once (scores; R and
    Z, or E), and the per-sentence (n, width + 1) products of every seed written and read once each way.
    """
    item = params.query.element_size()
    nnz = batch.counts.values().numel()
    rows = batch.counts.shape[0] + batch.counts.shape[1] + 2
    index = batch.counts.col_indices().element_size()
    width = first_layer(params.head).shape[2] if params.projects else params.embeddings.shape[2]
    flops = 2 * 2 * batch.product_size(width + 1)
    carried = [params.word_scores()]
    if params.coords is not None:
        carried += [params.projected, params.coords]
    else:
        carried += [params.embeddings] + list(params.head.values())
        if params.projects:
            flops += 3 * 2 * params.embeddings.numel() * width
    bytes_ = 2 * (nnz * (item + index) + rows * index)
    bytes_ += sum(2 * t.numel() * item for t in carried)
    bytes_ += 4 * batch.n_seeds * batch.n_sentences * (width + 1) * item
    return float(flops), float(bytes_)


def roofline(flops: float, bytes_: float, seconds_: float, machine: dict, dtype: torch.dtype) -> dict:
    """The roofline bound max(flops / peak, bytes / bandwidth) and the fraction of it achieved."""
    peak = machine["matmul_gflops_float32" if dtype == torch.float32 else "matmul_gflops_float64"] * 1e9
    compute, memory = flops / peak, bytes_ / (machine["copy_gbps"] * 1e9)
    bound = max(compute, memory)
    return {"flops": flops, "bytes": bytes_, "compute_bound_ms": compute * 1e3, "memory_bound_ms": memory * 1e3,
            "bound_ms": bound * 1e3, "achieved_ms": seconds_ * 1e3, "roofline_fraction": bound / seconds_}


# ----------------------------------------------------------------------------------------------
# Engine against the padded reference (SST2 and the synthetic preset)
# ----------------------------------------------------------------------------------------------


def sst2_data(quick: bool) -> tuple[Dataset, str]:
    """SST2 (its first 300 training sentences when quick); a random stand-in of SST2's vocabulary size
    when the files are absent, for ``quick`` only."""
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


def reference_threads(reference: PaddedModel, device: torch.device) -> int | None:
    """The thread count on which the reference runs faster here (each timed once after a warm-up);
    None off the CPU."""
    if device.type != "cpu":
        return None
    timings = {}
    for count in thread_counts():
        with threads(count):
            reference.epoch()
            timings[count] = seconds(reference.epoch)
    return min(timings, key=timings.get)


def padded_case(model: ModelConfig, corpus: Corpus, n_classes: int, dtype: torch.dtype, machine: dict,
                reps: int = 5, block: int = 20, agree_epochs: int = 3, lr: float = 0.1,
                device: torch.device | None = None) -> dict:
    """One head on one corpus: the engine and the padded reference from the same start agree after
    ``agree_epochs`` epochs (else RuntimeError), then ``reps`` alternating timings (the engine over ``block``
    epochs, the reference over one), their median ratio, and the engine's roofline."""
    device = device or default_device()
    release_memory()  # the previous case's padded tensors
    engine = EngineModel.create(model, [corpus], n_classes, dtype, lr, device)
    reference = PaddedModel(model.head, engine.params, 0, corpus, lr=lr, train_head=model.head != "FC")
    gap = agree(engine, reference, agree_epochs)
    tolerance = 1e-3 if dtype == torch.float32 else 1e-9
    if not gap < tolerance:  # a check of the results, not of the code: kept under python -O
        raise RuntimeError(f"Attn-{model.head}: engine and padded reference disagree after training "
                           f"(gap {gap:.2e}, tolerance {tolerance:.0e})")
    ref_threads = reference_threads(reference, device)
    engine_times, reference_times = [], []
    for _ in range(reps):
        engine_times.append(engine.epochs(block))
        with threads(ref_threads):
            reference_times.append(seconds(reference.epoch, device=device))
    ratios = [r / e for r, e in zip(reference_times, engine_times)]
    products = min(engine.product_seconds(block) for _ in range(reps))
    return {
        "head": model.head, "sentences": len(corpus), "nonzeros": int(engine.batch.counts.values().numel()),
        "engine_ms": statistics.median(engine_times) * 1e3, "engine_ms_best": min(engine_times) * 1e3,
        "reference_ms": statistics.median(reference_times) * 1e3, "reference_threads": ref_threads,
        "speedup_median": statistics.median(ratios), "speedups": ratios, "agreement_gap": gap,
        "products_ms": products * 1e3, "products_share": products / min(engine_times),
        "product_ns_per_nonzero": products / 2 / engine.batch.counts.values().numel() * 1e9,
        **roofline(*engine.traffic(), min(engine_times), machine, dtype),
    }


def sst2_cases(machine: dict, quick: bool = False, reps: int = 5, heads: Sequence[str] = ("FC", "TC"),
               device: torch.device | None = None) -> tuple[list[dict], str]:
    """SST2 in the paper's setting (d_e = 200, d_k = 10, float32, lr 0.1), one row per head; and the data's source."""
    data, source = sst2_data(quick)
    rows = [padded_case(dataclasses.replace(SST2_MODEL, head=head), data.train, data.n_classes, torch.float32,
                        machine, reps=1 if quick else reps, block=2 if quick else 20,
                        agree_epochs=1 if quick else 3, device=device)
            for head in heads]
    return rows, source


def synthetic_cases(machine: dict, quick: bool = False, reps: int = 5, heads: Sequence[str] = ("FC", "TC", "TL"),
                    device: torch.device | None = None) -> list[dict]:
    """The synthetic preset (seed 0's data, d = 10, float64, lr 0.1), one row per head."""
    data = _synthetic_data(quick)
    dataset = generate_synthetic(data, 0)
    return [padded_case(synthetic_preset(head).model, dataset.train, dataset.n_classes, torch.float64, machine,
                        reps=1 if quick else reps, block=2 if quick else 50, agree_epochs=1 if quick else 3,
                        device=device)
            for head in heads]


def _synthetic_data(quick: bool) -> SyntheticDataConfig:
    return SyntheticDataConfig(n_nontopic=300, n_train=60, n_test=20) if quick else synthetic_preset().data


# ----------------------------------------------------------------------------------------------
# Synthetic preset: seeds batched, and scaling with the corpus size
# ----------------------------------------------------------------------------------------------


def train_epoch_seconds(head: str, datasets: Sequence[Dataset], epochs: tuple[int, int],
                        device: torch.device | None = None) -> float:
    """Seconds per epoch of train() on the synthetic preset (all recording on, as the chapters train),
    set-up cancelled out by timing two run lengths back to back."""
    base = synthetic_preset(head)
    seeds = list(range(len(datasets)))

    def run(n: int) -> float:
        return seconds(lambda: train(base.model, TrainConfig(epochs=n), datasets, seeds,
                                     trace_words=datasets[0].topic_words, quiet=True, device=device))
    short, long = run(epochs[0]), run(epochs[1])
    return max(long - short, 1e-9) / (epochs[1] - epochs[0])


def seeds_table(quick: bool = False, reps: int = 3, heads: Sequence[str] = ("FC", "TC", "TL"),
                counts: Sequence[int] = SEED_COUNTS, device: torch.device | None = None,
                machine: dict | None = None) -> list[dict]:
    """Per-epoch time of train() for S seeds at once (each seed on its own data, as the experiments
    train them), per head, and the time per seed: the median of ``reps`` rounds, each round timing
    every S in turn, so that load from other processes falls on all of them alike. With ``machine``
    (:func:`machine_info`), also the epoch's memory-traffic bound (:func:`epoch_traffic` at the measured
    copy bandwidth) and how many times that bound the epoch takes."""
    if quick:
        counts, heads, epochs, reps = (1, 2), heads[:1], (2, 6), 1
    else:
        epochs = (20, 220)
    data = _synthetic_data(quick)
    datasets = [generate_synthetic(data, seed) for seed in range(max(counts))]
    rows = []
    for head in heads:
        train_epoch_seconds(head, datasets[:1], (1, 2), device)  # warm-up
        samples: dict[int, list[float]] = {count: [] for count in counts}
        for _ in range(reps):
            for count in counts:
                samples[count].append(train_epoch_seconds(head, datasets[:count], epochs, device))
        for count in counts:
            epoch_s = statistics.median(samples[count])
            engine = EngineModel.create(synthetic_preset(head).model, [d.train for d in datasets[:count]],
                                        datasets[0].n_classes, torch.float64, device=device)
            products = min(engine.product_seconds(2 if quick else 20) for _ in range(reps))
            row = {"head": head, "seeds": count, "epoch_ms": epoch_s * 1e3,
                   "ms_per_seed": epoch_s * 1e3 / count, "products_ms": products * 1e3,
                   "epoch_ms_samples": [s * 1e3 for s in samples[count]]}
            if machine is not None:
                _, bytes_ = engine.traffic()
                row["memory_bound_ms"] = bytes_ / (machine["copy_gbps"] * 1e9) * 1e3
                row["times_memory_bound"] = row["epoch_ms"] / row["memory_bound_ms"]
            rows.append(row)
    return rows


def shared_corpus_table(quick: bool = False, reps: int = 5, heads: Sequence[str] = ("FC", "TC"),
                        seeds: int = SHARED_SEEDS, device: torch.device | None = None) -> list[dict]:
    """``seeds`` seeds on the one SST2 corpus (as the SST chapter trains them) against one seed: the
    engine's epoch (paper's model, float32, as :func:`sst2_cases`) on the shared count matrix, and on
    the same corpora stacked block-diagonally (what the seeds would cost on corpora of their own).
    ``reps`` rounds each time a block of epochs of the three in turn, so that load from other processes
    falls on all of them alike; the median of the single epochs (an epoch is a few ms: the median
    is one that no other process interrupted). Also the two sparse products alone, best of ``reps``."""
    data, _ = sst2_data(quick)
    corpora = {"one": [data.train], "shared": [data.train] * seeds, "stacked": [data.train] * seeds}
    block, reps = (2, 1) if quick else (10, reps)
    rows = []
    for head in heads:
        model = dataclasses.replace(SST2_MODEL, head=head)
        engines = {name: EngineModel.create(model, c, data.n_classes, torch.float32, device=device,
                                            share=name != "stacked") for name, c in corpora.items()}
        assert engines["shared"].batch.shared and not engines["stacked"].batch.shared
        for engine in engines.values():
            engine.epochs(1)  # warm-up: buffers, caches
        samples: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(reps):
            for name, engine in engines.items():
                samples[name] += [engine.epochs(1) * 1e3 for _ in range(block)]
        ms = {name: statistics.median(times) for name, times in samples.items()}
        products = {name: min(engine.product_seconds(block) for _ in range(reps)) * 1e3
                    for name, engine in engines.items()}
        rows.append({"head": head, "seeds": seeds, "one_seed_ms": ms["one"], "shared_ms": ms["shared"],
                     "stacked_ms": ms["stacked"], "shared_ms_per_seed": ms["shared"] / seeds,
                     "stacked_ms_per_seed": ms["stacked"] / seeds,
                     "shared_per_seed_over_one": ms["shared"] / seeds / ms["one"],
                     "stacked_per_seed_over_one": ms["stacked"] / seeds / ms["one"],
                     "shared_speedup_over_stacked": ms["stacked"] / ms["shared"],
                     "one_seed_products_ms": products["one"], "shared_products_ms": products["shared"],
                     "stacked_products_ms": products["stacked"], "epoch_ms_samples": samples})
    return rows


def book_rows(rows: list[dict]) -> list[dict]:
    """The seeds table's rows at the chapters' seed count (:data:`BOOK_SEEDS`; the most seeds timed when
    that count was not, as in a quick run), one per head."""
    counts = {row["seeds"] for row in rows}
    count = BOOK_SEEDS if BOOK_SEEDS in counts else max(counts)
    return [row for row in rows if row["seeds"] == count]


def seeds_ratio(rows: list[dict], head: str) -> float:
    """Time of an epoch of the most seeds over that of one seed."""
    mine = sorted((r for r in rows if r["head"] == head), key=lambda r: r["seeds"])
    return mine[-1]["epoch_ms"] / mine[0]["epoch_ms"]


def corpus_table(quick: bool = False, reps: int = 5, grid: Sequence[tuple[int, int]] = SCALING_GRID,
                 device: torch.device | None = None) -> list[dict]:
    """Engine epoch time (Attn-FC, synthetic preset model, one seed, float64) against the number of
    tokens, over ``grid``'s (sentences, non-topic words per sentence); the best of ``reps`` timings.
    One CPU thread throughout: train() gives the largest epochs a second thread (see
    :func:`attnlib.train.cpu_threads`), which would bend the curve where the policy switches."""
    if quick:
        grid, reps = [(200, 10), (400, 40)], 1
    model = synthetic_preset().model
    rows = []
    for sentences, length in grid:
        config = SyntheticDataConfig(n_train=sentences, n_test=1, m=length)
        corpus = generate_synthetic(config, 0).train
        tokens = int(corpus.lengths.sum())
        engine = EngineModel.create(model, [corpus], config.n_topics, torch.float64, device=device)
        # The engine keeps only its count matrix: dropping the corpus (its sentences and scipy counts)
        # now, and the engine before the next corpus is generated, keeps one size in memory at a time,
        # so the largest corpora fit in a notebook's memory (Binder gives about 2 GB).
        del corpus
        repeat = max(1, min(20, 10**6 // (sentences * length)))
        timings = reps if tokens <= 10**6 else min(reps, 3)
        with threads(1 if engine.device.type == "cpu" else None):
            engine.epochs(1)
            epoch_ms = min(engine.epochs(repeat) for _ in range(timings)) * 1e3
        rows.append({"sentences": sentences, "length": length + 1, "classes": config.n_topics, "tokens": tokens,
                     "nonzeros": int(engine.batch.counts.values().numel()), "epoch_ms": epoch_ms})
        del engine
        release_memory()
    return rows


def linear_cost_fit(rows: Sequence[dict]) -> dict:
    """The scaling table's epoch times as ``fixed + per_token * tokens + per_sentence * sentences``:
    non-negative coefficients fitted to the relative errors (each row counts alike, whatever its size),
    and the largest relative error of the fit over the rows."""
    tokens = np.array([r["tokens"] for r in rows], dtype=float)
    sentences = np.array([r["sentences"] for r in rows], dtype=float)
    ms = np.array([r["epoch_ms"] for r in rows], dtype=float)
    terms = np.column_stack([np.ones_like(ms), tokens, sentences])
    coefficients, _ = nnls(terms / ms[:, None], np.ones_like(ms))
    fit = {"fixed_ms": float(coefficients[0]), "ns_per_token": float(coefficients[1] * 1e6),
           "ns_per_sentence": float(coefficients[2] * 1e6)}
    predicted = cost_model_ms(fit, tokens, sentences)
    return {**fit, "max_relative_error": float(np.max(np.abs(predicted - ms) / ms))}


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def _table(title: str, rows: list[dict], columns: Sequence[str]) -> list[str]:
    """A plain fixed-width table of ``columns`` of ``rows``, as lines."""
    lines = ["", title, "  " + "  ".join(f"{c:>17}" for c in columns)]
    return lines + ["  " + "  ".join(f"{_fmt(row[c]):>17}" for c in columns) for row in rows]


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_report(results: dict) -> str:
    """Every table of :func:`run_all`'s results and the targets' verdicts, as plain text."""
    machine = results["machine"]
    lines = [f"device {machine['device']} ({machine['device_name']}), torch {machine['torch']}, "
             f"{machine['torch_threads']} threads; matmul {machine['matmul_gflops_float32']:.1f} GFLOP/s (float32), "
             f"{machine['matmul_gflops_float64']:.1f} (float64); copy {machine['copy_gbps']:.1f} GB/s"]
    padded_columns = ["head", "engine_ms", "reference_ms", "speedup_median", "products_ms", "bound_ms",
                      "roofline_fraction"]
    lines += _table(f"{results['sst2_source']}: one training epoch, engine vs padded reference "
                    "(d_e = 200, d_k = 10, float32)", results["sst2"], padded_columns)
    lines += _table("synthetic preset: one training epoch, engine vs padded reference (d = 10, float64)",
                    results["synthetic"], padded_columns)
    lines += _table("synthetic preset: train() epoch for S seeds at once", results["seeds"],
                    ["head", "seeds", "epoch_ms", "ms_per_seed", "products_ms"])
    lines += _table(f"{results['sst2_source']}: {results['sst2_shared'][0]['seeds']} seeds on the one corpus, engine epoch "
                    "(shared count matrix vs stacked block-diagonally, per seed vs one seed)", results["sst2_shared"],
                    ["head", "one_seed_ms", "shared_ms", "stacked_ms", "shared_per_seed_over_one",
                     "shared_speedup_over_stacked"])
    fit = results["epoch_time_linear_fit"]
    lines += _table(f"engine epoch vs corpus size (Attn-FC, 1 seed, 1 thread): log-log slope "
                    f"{results['epoch_time_vs_tokens_exponent']:.3f}; fit {fit['fixed_ms']:.3g} ms + "
                    f"{fit['ns_per_token']:.3g} ns/token + {fit['ns_per_sentence']:.3g} ns/sentence "
                    f"(within {fit['max_relative_error']:.0%})", results["corpus_size"],
                    ["sentences", "length", "tokens", "epoch_ms"])
    lines += ["", "targets: " + ", ".join(f"{k} {'met' if ok else 'NOT met'} ({results[k]:.3g})"
                                          for k, ok in results["targets_met"].items())]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Everything
# ----------------------------------------------------------------------------------------------


def verdicts(results: dict) -> dict[str, bool]:
    """Whether each issue target is met by the measured value."""
    check = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t}
    return {key: bool(check[op](results[key], bound)) for key, (op, bound) in TARGETS.items()}


def run_all(quick: bool = False, reps: int = 5, device: torch.device | None = None,
            log: Callable[[str], object] = lambda _: None) -> dict:
    """Every benchmark; the results as one JSON-ready dictionary with the keys the issue names.

    ``reps`` sets the alternating repetitions of the engine-vs-reference timings and the machine's
    peak rates (the seeds and scaling tables use at most 3 and ``reps``); ``log`` gets a line per stage.
    """
    device = device or default_device()
    started = time.perf_counter()
    machine = machine_info(quick, reps, device)
    log("machine measured")
    # The scaling table first: its largest corpus (2 10^7 tokens) is the most memory any benchmark needs,
    # and a process that has not yet held the SST models' padded tensors has the least to add to it.
    corpus = corpus_table(quick, reps, device=device)
    log("scaling table done")
    release_memory()
    sst, source = sst2_cases(machine, quick, reps, device=device)
    log("SST2 engine vs padded done")
    release_memory()
    synthetic = synthetic_cases(machine, quick, reps, device=device)
    log("synthetic engine vs padded done")
    release_memory()
    seeds = seeds_table(quick, min(reps, 3), device=device, machine=machine)
    log("seeds table done")
    release_memory()
    shared = shared_corpus_table(quick, reps, device=device)
    log("seeds on one SST2 corpus done")
    slope = loglog_slope([r["tokens"] for r in corpus], [r["epoch_ms"] for r in corpus])
    sst_by_head = {row["head"]: row for row in sst}
    synthetic_by_head = {row["head"]: row for row in synthetic}
    shared_by_head = {row["head"]: row for row in shared}
    results = {
        "quick": quick, "reps": reps, "sst2_source": source,
        "sst2_fc_speedup_vs_padded": sst_by_head["FC"]["speedup_median"],
        "sst2_tc_speedup_vs_padded": sst_by_head["TC"]["speedup_median"],
        "sst2_fc_roofline_fraction": sst_by_head["FC"]["roofline_fraction"],
        "sst2_tc_roofline_fraction": sst_by_head["TC"]["roofline_fraction"],
        "synthetic_fc_speedup_vs_padded": synthetic_by_head["FC"]["speedup_median"],
        "synthetic_seeds20_over_seeds1_time": seeds_ratio(seeds, "FC"),
        "synthetic_epoch_ms": {row["head"]: row["epoch_ms"] for row in book_rows(seeds)},
        "synthetic_times_memory_bound": {row["head"]: row["times_memory_bound"] for row in book_rows(seeds)},
        "epoch_time_vs_tokens_exponent": slope,
        "epoch_time_linear_fit": linear_cost_fit(corpus),
        "sst2_fc_shared_seeds_per_seed_over_one": shared_by_head["FC"]["shared_per_seed_over_one"],
        "sst2_tc_shared_seeds_per_seed_over_one": shared_by_head["TC"]["shared_per_seed_over_one"],
        "sst2": sst, "synthetic": synthetic, "seeds": seeds, "sst2_shared": shared, "corpus_size": corpus,
        "machine": machine,
    }
    results["targets_met"] = verdicts(results)
    results["seconds"] = time.perf_counter() - started
    return results
