"""Training one SST (or TREC) setting and reducing it to an :class:`~attnlib.experiments.sst.runs.SSTRun`."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from attnlib.config import RunConfig, TRECDataConfig, sst_preset
from attnlib.data.corpus import Dataset
from attnlib.data.sst import load_sst
from attnlib.data.transforms import PAD_ID, find_sentence, load_unpadded, mean_length_minus_one, padded_dataset
from attnlib.data.trec import load_trec
from attnlib.experiments.sst.runs import SSTRun, attention_shift, padding_attention, sentence_weights, top_tokens
from attnlib.experiments.sst.settings import F6_WORDS, F7_SENTENCE, N_TOP, SST_SEEDS
from attnlib.experiments.trec_analysis import traced_words
from attnlib.model import Batch, first_layer, forward
from attnlib.provenance import provenance
from attnlib.train import pinned_threads, train

RECORD_AT = (1,)
"""Extra snapshots of a setting's run: after step 1, F6's first plotted snapshot (as in the authors' plots;
at epoch 0 all scores tie)."""


def sst_dataset(config: RunConfig, download: bool = True) -> Dataset:
    """The dataset a T1 configuration trains on (masked: the plain sentences; unmasked: padded)."""
    if isinstance(config.data, TRECDataConfig):
        return load_trec(keep_punctuation=config.data.keep_punctuation, download=download,
                         dev_fraction=config.data.dev_fraction, split_seed=config.data.split_seed)
    data = load_sst(config.data.kind, keep_punctuation=config.data.keep_punctuation, download=download)
    return data if config.data.mask_padding else padded_dataset(data)


def _provenance() -> dict:
    """The environment part of a stored run's JSON (:func:`attnlib.provenance.provenance` plus CPU threads);
    the config hash and seeds are written under their own keys by :func:`train_setting`."""
    info = {k: v for k, v in provenance().items() if k not in ("config_hashes", "seeds")}
    return {**info, "cpu_threads": torch.get_num_threads()}


def traced_choice(kind: str, dataset: Dataset) -> tuple[list[int], list[int], tuple[int, ...]]:
    """For a dataset kind: the words whose attention shift (F6) is traced (word ids, or
    :data:`~attnlib.experiments.sst.settings.EVERY_SENTENCE`), the words whose scores and norms are kept besides the
    top ones, and the epochs at whose snapshot every training sentence's most-attended word is kept too (so
    that it can be found again from the kept words). SST2: F6's five words; TREC: see
    :func:`attnlib.experiments.trec_analysis.traced_words`."""
    if kind == "SST2":
        index = {w: i for i, w in enumerate(dataset.vocab)}
        return [index[w] for w in F6_WORDS if w in index], [], ()
    if kind == "TREC":
        return traced_words(dataset)
    return [], [], ()


def reduce_run(result, config: RunConfig, kind: str, head: str, variant: str, dataset: Dataset,
               n_top: int = N_TOP) -> SSTRun:
    """Keep what the figures need from a :class:`~attnlib.train.TrainResult` that traced every word."""
    train_corpus = dataset.train
    vocab = dataset.vocab
    index = {w: i for i, w in enumerate(vocab)}
    S = len(result.seeds)
    stopped = np.asarray(result.stopped_epoch)
    rec = np.asarray(result.record_epochs)
    all_scores = result.traced_scores  # (R, S, V)
    if all_scores.shape[-1] != len(vocab):
        raise ValueError("reduce_run: the run must trace every word (trace_words = all vocabulary ids)")
    top = np.zeros((S, n_top), dtype=np.int64)
    for k in range(S):
        last = int(np.searchsorted(rec, stopped[k], side="right") - 1)
        s = all_scores[last, k].astype(np.float64).copy()
        if config.data.mask_padding:
            s[PAD_ID] = -np.inf
        top[k] = np.argsort(-s, kind="stable")[:n_top]
    shift_ids, extra, tops_at = traced_choice(kind, dataset)
    keep = set(top.ravel().tolist()) | {PAD_ID} | set(extra) | {w for w in shift_ids if w >= 0}
    for epoch in tops_at:
        r = int(np.searchsorted(rec, epoch))
        if r < len(rec) and rec[r] == epoch:
            for k in range(S):
                keep |= set(top_tokens(train_corpus.sentences, all_scores[r, k]).tolist())
    shift = pd.DataFrame()
    f7 = np.zeros((0, 0, 0), dtype=np.float32)
    if shift_ids:
        frames = []
        for k in range(S):
            df = attention_shift(train_corpus, all_scores[:, k], shift_ids, mask_pad=config.data.mask_padding,
                                 n_classes=dataset.n_classes)
            df.insert(0, "seed_index", k)
            df.insert(1, "seed", result.seeds[k])
            frames.append(df)
        # by seed, word id and snapshot: the order of the stored runs' rows
        shift = (pd.concat(frames, ignore_index=True).sort_values(["seed_index", "word_id", "snapshot"], kind="stable")
                 .reset_index(drop=True))
    if kind == "SST2":
        f7_ids = [index[w] for w in F7_SENTENCE.split()]
        keep |= set(f7_ids)
        sentence = np.array(f7_ids)
        find_sentence(dataset, F7_SENTENCE)  # exactly one match, or an error
        f7 = sentence_weights(all_scores, sentence).astype(np.float32)  # over its 12 real tokens
    words = np.array(sorted(keep), dtype=np.int64)
    m_w = mean_length_minus_one(load_unpadded(dataset).train)[words]
    return SSTRun(kind=kind, head=head, variant=variant, config=config, seeds=list(result.seeds),
                  loss=result.loss, dev_loss=result.dev_loss, record_epochs=rec,
                  test_accuracy_curve=result.test_accuracy, words=words, word_names=[vocab[i] for i in words],
                  m_w=m_w, scores=all_scores[:, :, words], norms=result.traced_norms[:, :, words], top=top,
                  final_test_accuracy=result.final_test_accuracy, stopped_epoch=stopped,
                  best_epoch=np.asarray(result.best_epoch), query_norm=result.query_norm, shift=shift, f7_weights=f7,
                  pad_weight=np.zeros((0, 0), np.float32) if config.data.mask_padding
                  else padding_attention(train_corpus, all_scores))


@pinned_threads  # at_best's products too: the stored arrays never depend on the caller's thread count
def train_setting(kind: str, head: str, variant: str, seeds: Sequence[int] = SST_SEEDS, quiet: bool = True,
                  config: RunConfig | None = None, dataset: Dataset | None = None) -> SSTRun:
    """Train one setting (all seeds batched), tracing every word every P epochs and at :data:`RECORD_AT`,
    and reduce it."""
    config = config or sst_preset(kind, head, variant)
    dataset = dataset or sst_dataset(config)
    start = time.perf_counter()
    result = train(config.model, config.train, [dataset] * len(seeds), list(seeds),
                   trace_words=np.arange(len(dataset.vocab)), quiet=quiet, keep_params=True, record_at=RECORD_AT)
    wall = time.perf_counter() - start
    run = reduce_run(result, config, kind, head, variant, dataset)
    run.best_scores, run.best_projected, run.at_best = at_best(result, config, dataset)
    run.provenance = {"config_hash": config.config_hash(), **_provenance(), "wall_time_s": round(wall, 1),
                      "seeds": list(seeds), "dataset_fingerprint": dataset.fingerprint(),
                      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return run


def at_best(result, config: RunConfig, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """At the restored best epoch, per seed: every word's score (S, V), its embedding through the
    classifier's linear layer E U (S, V, K; Attn-FC and Attn-TC are linear after the pooling, so these
    two arrays give every logit), and the engine's losses and accuracies there on each split."""
    params = result.params
    projected = torch.einsum("svd,sdk->svk", params.embeddings, first_layer(params.head))
    dtype, device = params.embeddings.dtype, params.embeddings.device
    best = np.asarray(result.best_epoch)
    seeds = np.arange(len(result.seeds))
    values = {"train_loss": result.loss[best, seeds], "train_accuracy": result.train_accuracy[best, seeds],
              "dev_loss": result.dev_loss[best, seeds], "test_accuracy": np.asarray(result.final_test_accuracy)}
    with torch.no_grad():
        for split in ("dev", "test"):
            fwd = forward(config.model.head, params, Batch.from_corpora([dataset.splits[split]] * len(seeds),
                                                                        dtype, device))
            values.setdefault(f"{split}_loss", fwd.loss.cpu().numpy())
            values.setdefault(f"{split}_accuracy", fwd.accuracy.cpu().numpy())
    return (np.asarray(result.final_scores, dtype=np.float32), projected.cpu().numpy().astype(np.float32),
            {k: np.asarray(v, dtype=np.float64) for k, v in values.items()})
