"""The trainer: seeds in one call, freezing, exact key reduction, early stopping, divergence, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_dataset

from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig
from attnlib.data import Corpus, Dataset, generate_synthetic
from attnlib.model import init_params
from attnlib.train import HUGE_EPOCH_THREADS, SMALL_EPOCH, TrainingDiverged, cpu_threads, train

SMALL = SyntheticDataConfig(n_nontopic=300, n_train=120, n_test=40)


def small_datasets(seeds=(0, 1)) -> list[Dataset]:
    return [generate_synthetic(SMALL, s) for s in seeds]


def test_seeds_trained_together_equal_seeds_trained_alone() -> None:
    datasets = small_datasets()
    together = train(ModelConfig(head="TL"), TrainConfig(epochs=200), datasets, [0, 1], trace_words=range(8), quiet=True)
    alone = train(ModelConfig(head="TL"), TrainConfig(epochs=200), datasets[1:], [1], trace_words=range(8), quiet=True)
    np.testing.assert_allclose(together.loss[:, 1], alone.loss[:, 0], rtol=1e-12)
    np.testing.assert_allclose(together.traced_scores[:, 1], alone.traced_scores[:, 0], rtol=1e-10, atol=1e-14)


def test_same_config_and_seed_give_identical_numbers() -> None:
    datasets = small_datasets()
    runs = [train(ModelConfig(head="TC"), TrainConfig(epochs=100), datasets, [0, 1], trace_words=range(8), quiet=True)
            for _ in range(2)]
    assert np.array_equal(runs[0].loss, runs[1].loss)
    assert np.array_equal(runs[0].final_scores, runs[1].final_scores)


def test_records_have_the_documented_shapes() -> None:
    run = train(ModelConfig(head="FC"), TrainConfig(epochs=30, record_every=7), small_datasets(), [0, 1],
                trace_words=range(8), quiet=True)
    assert run.loss.shape == (31, 2) and run.record_epochs.tolist() == [0, 7, 14, 21, 28, 30]
    assert run.traced_scores.shape == (6, 2, 8) and run.final_scores.shape == (2, 308)
    assert np.all(run.traced_scores[0] == 0.0)  # keys start at 0
    assert np.allclose(run.loss[0], np.log(4), atol=1e-3)


def test_records_the_epochs_asked_for() -> None:
    """record_at adds snapshots (e.g. after the first step) to the regular ones; nothing else changes."""
    config = TrainConfig(epochs=30, record_every=10)
    plain = train(ModelConfig(head="TC"), config, small_datasets(), [0, 1], trace_words=range(8), quiet=True)
    more = train(ModelConfig(head="TC"), config, small_datasets(), [0, 1], trace_words=range(8), quiet=True,
                 record_at=(1, 5, 99))
    assert plain.record_epochs.tolist() == [0, 10, 20, 30] and more.record_epochs.tolist() == [0, 1, 5, 10, 20, 30]
    assert more.record_epochs.dtype == plain.record_epochs.dtype
    assert np.array_equal(more.loss, plain.loss) and np.array_equal(more.final_scores, plain.final_scores)
    regular = [more.record_epochs.tolist().index(e) for e in plain.record_epochs]
    assert np.array_equal(more.traced_scores[regular], plain.traced_scores)
    one_epoch = train(ModelConfig(head="TC"), TrainConfig(epochs=1), small_datasets(), [0, 1], trace_words=range(8),
                      quiet=True)
    assert np.array_equal(more.traced_scores[1], one_epoch.traced_scores[1])


def test_keys_stay_parallel_to_the_query_and_the_reduction_is_exact() -> None:
    """N5 and the exact reduction: full keys stay parallel to q, and carrying scores gives the same run."""
    datasets = small_datasets()
    config = TrainConfig(epochs=300)
    full = train(ModelConfig(head="TC", reduce_keys=False), config, datasets, [0, 1], trace_words=range(8),
                 quiet=True, keep_params=True)
    reduced = train(ModelConfig(head="TC"), config, datasets, [0, 1], trace_words=range(8), quiet=True, keep_params=True)
    assert full.params.keys is not None and reduced.params.keys is None
    keys, query = full.params.keys, full.params.query
    along = (keys @ query[:, :, None]) / (query * query).sum(1)[:, None, None] * query[:, None, :]
    deviation = (keys - along).norm() / keys.norm()
    assert deviation < 1e-8
    np.testing.assert_allclose(reduced.traced_scores, full.traced_scores, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(reduced.loss, full.loss, rtol=1e-10)
    torch.testing.assert_close(reduced.params.key_vectors(), full.params.keys, rtol=1e-9, atol=1e-12)


def initial(model: ModelConfig, dataset: Dataset):
    return init_params(model, len(dataset.vocab), dataset.n_classes, [0], torch.float64, torch.device("cpu"))


def test_trainable_query_moves_the_query() -> None:
    model = ModelConfig(head="TC", train_query=True, key_init_std=0.1)
    datasets = small_datasets([0])
    run = train(model, TrainConfig(epochs=50), datasets, [0], quiet=True, keep_params=True)
    assert run.params.keys is not None  # a trainable query needs the full keys
    assert not torch.allclose(run.params.query, initial(model, datasets[0]).query)
    fixed = train(ModelConfig(head="TC", key_init_std=0.1), TrainConfig(epochs=50), datasets, [0], quiet=True, keep_params=True)
    assert torch.equal(fixed.params.query, initial(model, datasets[0]).query)


@pytest.mark.parametrize("group", ["keys", "embeddings", "head"])
def test_frozen_groups_do_not_move(group: str) -> None:
    datasets = small_datasets([0])
    model = ModelConfig(head="TC", embed_init_std=0.1)
    before = initial(model, datasets[0])
    after = train(model, TrainConfig(epochs=60, freeze=(group,)), datasets, [0], quiet=True, keep_params=True).params
    frozen = {"keys": (before.scores, after.scores), "embeddings": (before.embeddings, after.embeddings),
              "head": (before.head["U"], after.head["U"])}
    for name, (b, a) in frozen.items():
        assert torch.equal(b, a) == (name == group), name


def test_divergence_is_reported_with_the_epoch() -> None:
    with pytest.raises(TrainingDiverged, match=r"epoch \d+.*learning rate \(1e\+30\)"):
        train(ModelConfig(head="TC"), TrainConfig(epochs=50, lr=1e30), small_datasets([0]), [0], quiet=True)


def _with_dev(dataset: Dataset, seed: int) -> Dataset:
    extra = random_dataset(seed, vocab_size=len(dataset.vocab), n_classes=dataset.n_classes, n_train=40)
    return Dataset(dataset.name, dataset.vocab, dataset.n_classes, {**dataset.splits, "dev": extra.train})


def test_early_stopping_restores_each_seeds_best_parameters() -> None:
    """Dev data unrelated to the labels: the dev loss soon rises, each seed stops on its own."""
    datasets = [_with_dev(d, 100 + k) for k, d in enumerate(small_datasets())]
    run = train(ModelConfig(head="TC", embed_init_std=0.1), TrainConfig(epochs=3000, patience=25), datasets, [0, 1],
                quiet=True, keep_params=True)
    assert np.all(run.stopped_epoch < 3000)
    assert np.all(run.stopped_epoch - run.best_epoch == 25)
    for k in range(2):
        dev = run.dev_loss[: run.stopped_epoch[k] + 1, k]
        assert np.nanargmin(dev) == run.best_epoch[k]
        assert np.all(np.isnan(run.loss[run.stopped_epoch[k] + 1 :, k]))
    restored = train(ModelConfig(head="TC", embed_init_std=0.1),
                     TrainConfig(epochs=int(run.best_epoch[0])), datasets[:1], [0], quiet=True, keep_params=True)
    torch.testing.assert_close(restored.params.embeddings[0], run.params.embeddings[0])


def test_bad_calls_fail_clearly() -> None:
    datasets = small_datasets([0])
    with pytest.raises(ValueError, match="one dataset per seed"):
        train(ModelConfig(), TrainConfig(epochs=1), datasets, [0, 1], quiet=True)
    with pytest.raises(ValueError, match="'dev' split"):
        train(ModelConfig(), TrainConfig(epochs=1, patience=5), datasets, [0], quiet=True)
    with pytest.raises(ValueError, match="empty"):
        Corpus([np.array([1, 2]), np.array([], dtype=np.int64)], np.array([0, 1]), 5)


@pytest.mark.parametrize("head,freeze", [("FC", ()), ("TC", ("head",)), ("TL", ("head",))])
def test_span_reduction_gives_the_full_width_trajectory(head: str, freeze: tuple[str, ...]) -> None:
    """With a fixed head, training on (E(0), Z, R = E U1) follows the full-width run to rounding:
    losses, traced scores and norms every epoch, every word's final norm and the final embeddings."""
    datasets = small_datasets()
    model, config = ModelConfig(head=head, embed_init_std=0.1), TrainConfig(epochs=300, freeze=freeze)
    runs = [train(model, config, datasets, [0, 1], trace_words=range(8), quiet=True, keep_params=True,
                  reduce_embeddings=reduce) for reduce in (False, True)]
    full, reduced = runs
    np.testing.assert_allclose(reduced.loss, full.loss, rtol=1e-10)
    np.testing.assert_allclose(reduced.traced_scores, full.traced_scores, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(reduced.traced_norms, full.traced_norms, rtol=1e-10)
    np.testing.assert_allclose(reduced.final_norms, full.final_norms, rtol=1e-10)
    assert reduced.params.coords is None  # handed back in full
    torch.testing.assert_close(reduced.params.embeddings, full.params.embeddings, rtol=1e-10, atol=1e-13)
    assert not np.allclose(reduced.traced_norms[0], reduced.traced_norms[-1])  # the embeddings did move


def test_small_problems_train_on_one_thread_and_restore_the_setting() -> None:
    before = torch.get_num_threads()
    with cpu_threads(torch.device("cpu"), 10):
        assert torch.get_num_threads() == 1
    with cpu_threads(torch.device("cpu"), SMALL_EPOCH):
        assert torch.get_num_threads() == HUGE_EPOCH_THREADS
    assert torch.get_num_threads() == before


def test_same_numbers_in_another_process() -> None:
    """Determinism across processes: a fresh interpreter reproduces the run bit for bit."""
    import subprocess
    import sys

    script = ("import numpy as np; from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig; "
              "from attnlib.data import generate_synthetic; from attnlib.train import train; "
              "d = [generate_synthetic(SyntheticDataConfig(n_nontopic=300, n_train=120, n_test=40), s) for s in (0, 1)]; "
              "r = train(ModelConfig(head='TL'), TrainConfig(epochs=150), d, [0, 1], trace_words=range(8), quiet=True); "
              "print(np.concatenate([r.loss.ravel(), r.final_scores.ravel()]).tobytes().hex())")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
               for _ in range(2)}
    datasets = small_datasets()
    here = train(ModelConfig(head="TL"), TrainConfig(epochs=150), datasets, [0, 1], trace_words=range(8), quiet=True)
    outputs.add(np.concatenate([here.loss.ravel(), here.final_scores.ravel()]).tobytes().hex() + "\n")
    assert len(outputs) == 1


def test_reusing_freed_memory_changes_no_bit() -> None:
    """Training asks glibc's malloc to reuse freed blocks (fewer page faults per epoch); a process that
    trains without that setting gets the same bytes, for a head with a hidden layer of a few MB per epoch."""
    import subprocess
    import sys

    from attnlib.train import reuse_freed_memory

    if sys.platform.startswith("linux"):
        assert reuse_freed_memory()  # glibc accepted both settings
    script = ("import sys, numpy as np; import attnlib.train as T; from attnlib.config import ModelConfig, "
              "SyntheticDataConfig, TrainConfig; from attnlib.data import generate_synthetic; "
              "T.reuse_freed_memory = (lambda: False) if sys.argv[1] == 'off' else T.reuse_freed_memory; "
              "d = [generate_synthetic(SyntheticDataConfig(n_nontopic=300, n_train=400, n_test=40), s) for s in (0, 1)]; "
              "r = T.train(ModelConfig(head='TL', hidden_units=400), TrainConfig(epochs=40), d, [0, 1], "
              "trace_words=range(8), quiet=True); "
              "print(np.concatenate([r.loss.ravel(), r.final_scores.ravel()]).tobytes().hex())")
    outputs = {subprocess.run([sys.executable, "-c", script, switch], capture_output=True, text=True, check=True).stdout
               for switch in ("on", "off")}
    assert len(outputs) == 1


def _record_batches(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every Batch train() builds, for checking which form it chose."""
    from attnlib import model as model_module

    built, original = [], model_module.Batch.from_corpora.__func__

    def spy(cls, *args, **kwargs):
        built.append(original(cls, *args, **kwargs))
        return built[-1]
    monkeypatch.setattr(model_module.Batch, "from_corpora", classmethod(spy))
    return built


@pytest.mark.parametrize("head", ["FC", "TC", "TL"])
def test_shared_corpus_training_follows_the_block_diagonal_run(head: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three seeds on one dataset (the SST case) train on the shared count matrix; with early stopping,
    every recorded number and the final parameters equal the block-diagonal run's to rounding."""
    dataset = _with_dev(small_datasets([0])[0], 100)
    built = _record_batches(monkeypatch)
    model, config = ModelConfig(head=head, embed_init_std=0.1), TrainConfig(epochs=3000, patience=25, record_every=50)
    runs = [train(model, config, [dataset] * 3, [0, 1, 2], trace_words=range(8), quiet=True, keep_params=True,
                  share_corpora=share) for share in (True, False)]
    assert [b.shared for b in built] == [True] * 3 + [False] * 3  # train, test, dev of each run
    shared, stacked = runs
    assert np.all(stacked.stopped_epoch < 3000) and len(set(stacked.best_epoch)) > 1  # each seed stopped on its own
    np.testing.assert_array_equal(shared.stopped_epoch, stacked.stopped_epoch)
    np.testing.assert_array_equal(shared.best_epoch, stacked.best_epoch)
    for name in ("loss", "train_accuracy", "dev_loss", "test_loss", "test_accuracy", "traced_scores", "traced_norms",
                 "final_scores", "final_norms", "final_test_accuracy"):
        np.testing.assert_allclose(getattr(shared, name), getattr(stacked, name), rtol=1e-10, atol=1e-13, err_msg=name)
    torch.testing.assert_close(shared.params.embeddings, stacked.params.embeddings, rtol=1e-10, atol=1e-13)


def test_a_split_shared_by_only_some_seeds_falls_back_to_block_diagonal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training split shared, the dev split different per seed: each split takes its own form (the
    dev products copy the shared-form operand) and the run equals the all-block-diagonal one."""
    base = small_datasets([0])[0]
    datasets = [_with_dev(base, 200 + k) for k in range(2)]  # same train and test objects, own dev
    built = _record_batches(monkeypatch)
    model, config = ModelConfig(head="TC", embed_init_std=0.1), TrainConfig(epochs=200, patience=10**6)
    runs = [train(model, config, datasets, [0, 1], trace_words=range(8), quiet=True, share_corpora=share)
            for share in (True, False)]
    assert {name: b.shared for name, b in zip(("train", "test", "dev"), built[:3])} == \
        {"train": True, "test": True, "dev": False}
    for name in ("loss", "dev_loss", "traced_scores", "final_scores"):
        np.testing.assert_allclose(getattr(runs[0], name), getattr(runs[1], name), rtol=1e-10, atol=1e-13)


def test_shared_corpus_runs_are_identical_in_another_process() -> None:
    """Determinism of the shared form, in this process and in a fresh interpreter: bit for bit."""
    import subprocess
    import sys

    script = ("import numpy as np; from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig; "
              "from attnlib.data import generate_synthetic; from attnlib.train import train; "
              "d = generate_synthetic(SyntheticDataConfig(n_nontopic=300, n_train=120, n_test=40), 0); "
              "r = train(ModelConfig(head='TC'), TrainConfig(epochs=150, dtype='float32'), [d] * 3, [0, 1, 2], "
              "trace_words=range(8), quiet=True); "
              "print(np.concatenate([r.loss.ravel(), r.final_scores.ravel()]).tobytes().hex())")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout}
    dataset = small_datasets([0])[0]
    for _ in range(2):
        here = train(ModelConfig(head="TC"), TrainConfig(epochs=150, dtype="float32"), [dataset] * 3, [0, 1, 2],
                     trace_words=range(8), quiet=True)
        outputs.add(np.concatenate([here.loss.ravel(), here.final_scores.ravel()]).tobytes().hex() + "\n")
    assert len(outputs) == 1
