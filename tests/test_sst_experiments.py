"""T1 / F5 / F6 / F7 machinery on small data, and the verification of the stored SST runs."""

from __future__ import annotations

import copy
import functools
import json

import numpy as np
import pandas as pd
import pytest

from attnlib import theory
from attnlib.config import SST_VARIANTS, ModelConfig, RunConfig, SSTDataConfig, TrainConfig, sst_preset
from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.transforms import (
    PAD_ID,
    find_sentence,
    load_unpadded,
    mean_length_minus_one,
    padded_dataset,
    word_purity,
)
from attnlib.experiments import sst
from attnlib.experiments.sst import (
    SSTResult,
    SSTRun,
    attention_shift,
    crossing_epochs,
    reduce_run,
    sentence_weights,
    serving,
    top_tokens,
)
from attnlib.experiments.sst import storage as sst_store
from attnlib.experiments.sst import training as sst_train

VOCAB = ["$PAD$", "a", "powerful", "sequel", "and", "one", "of", "the", "best", "films", "year", "stupid", "mess",
         "solid", "suffers", "dull"]
IDX = {w: i for i, w in enumerate(VOCAB)}


def _ids(text: str) -> np.ndarray:
    return np.array([IDX[w] for w in text.split()], dtype=np.int64)


TRAIN = [("a powerful sequel and one of the best films of the year", 1), ("the best films", 1),
         ("a solid sequel", 1), ("a stupid mess", 0), ("the year suffers", 0), ("dull and stupid", 0),
         ("powerful and solid", 1), ("the mess of the year", 0)]


def tiny_dataset() -> Dataset:
    def corpus(rows):
        return Corpus([_ids(t) for t, _ in rows], np.array([y for _, y in rows]), len(VOCAB))
    return Dataset("SST2", VOCAB, 2, {"train": corpus(TRAIN), "dev": corpus(TRAIN[:4]), "test": corpus(TRAIN[4:])})


def test_padded_dataset_makes_pad_an_ordinary_word():
    data = tiny_dataset()
    padded = padded_dataset(data, length=12)
    for name, corpus in padded.splits.items():
        assert (corpus.lengths == 12).all()
        original = data.splits[name]
        pads = np.asarray(corpus.counts[:, PAD_ID].todense()).ravel()
        np.testing.assert_array_equal(pads, 12 - original.lengths)
        np.testing.assert_array_equal(corpus.labels, original.labels)
        # the real tokens are unchanged and come first
        for s, t in zip(corpus.sentences, original.sentences):
            np.testing.assert_array_equal(s[: len(t)], t)
    with pytest.raises(ValueError, match="longer than the padded length"):
        padded_dataset(data, length=5)
    assert load_unpadded(padded).train.lengths.tolist() == data.train.lengths.tolist()


def test_mean_length_minus_one_counts_each_sentence_once():
    data = tiny_dataset()
    m = mean_length_minus_one(data.train)
    # "the" occurs in sentences of lengths 12 (twice in it), 3, 3, 5 -> mean 23/4
    assert m[IDX["the"]] == pytest.approx(23 / 4 - 1)
    assert m[IDX["stupid"]] == pytest.approx(3 - 1)
    assert np.isnan(m[PAD_ID])


def test_word_purity_and_occurrence():
    occ, purity = word_purity(tiny_dataset().train)
    assert occ[IDX["the"]] == 4 and purity[IDX["the"]] == pytest.approx(0.0)  # 2 positive, 2 negative
    assert occ[IDX["powerful"]] == 2 and purity[IDX["powerful"]] == 1.0
    assert occ[IDX["year"]] == 3 and purity[IDX["year"]] == pytest.approx(1 / 3)
    assert np.isnan(purity[PAD_ID])


def test_top_tokens_ties_go_to_the_earliest_position():
    sentences = [_ids("a stupid mess"), _ids("dull and stupid")]
    scores = np.zeros(len(VOCAB))
    np.testing.assert_array_equal(top_tokens(sentences, scores), [IDX["a"], IDX["dull"]])
    scores[IDX["stupid"]] = scores[IDX["mess"]] = 1.0
    np.testing.assert_array_equal(top_tokens(sentences, scores), [IDX["stupid"], IDX["stupid"]])


def test_attention_shift_by_hand():
    corpus = tiny_dataset().train
    scores = np.zeros((2, len(VOCAB)))
    scores[1, IDX["powerful"]] = 2.0  # snapshot 1: "powerful" attracts all attention in its sentences
    df = attention_shift(corpus, scores, [IDX["powerful"]])
    first, last = df.iloc[0], df.iloc[1]
    # snapshot 0: ties -> first token: "a" (occ 3, 2 pos / 1 neg -> 1/3) and "powerful" (occ 2, purity 1)
    assert first.purity == pytest.approx((1 / 3 + 1.0) / 2)
    assert first.occurrence_unfloored == pytest.approx((3 + 2) / 2 / 1000)
    assert first.occurrence == 0.0
    assert last.purity == 1.0 and last.top_is_word == 1.0
    assert last.occurrence_unfloored == pytest.approx(0.002)


def test_attention_shift_floors_occurrence_in_thousands():
    sentences = [np.array([1, 2])] * 1500 + [np.array([2, 3])] * 10
    corpus = Corpus(sentences, np.array([1] * 1500 + [0] * 10), 4)
    df = attention_shift(corpus, np.zeros((1, 4)), [2])
    # every top token is word 1 (occ 1500 -> floor 1) or word 2 (occ 1510 -> floor 1)
    assert df.occurrence.iloc[0] == 1.0
    assert df.occurrence_unfloored.iloc[0] == pytest.approx((1500 * 1.5 + 10 * 1.51) / 1510)


def test_sentence_weights_count_repeated_words_per_position():
    sentence = _ids("a powerful sequel and one of the best films of the year")
    scores = np.zeros(len(VOCAB))
    scores[IDX["of"]] = np.log(2.0)
    w = sentence_weights(scores, sentence)
    assert w.shape == (12,) and w.sum() == pytest.approx(1.0)
    assert w[5] == pytest.approx(2 / 14) and w[9] == pytest.approx(2 / 14) and w[1] == pytest.approx(1 / 14)
    batched = sentence_weights(np.stack([scores, np.zeros(len(VOCAB))]), sentence)
    np.testing.assert_allclose(batched[1], 1 / 12)


def test_crossing_epochs():
    epochs = np.array([0, 100, 200, 300, 400])
    assert crossing_epochs(epochs, [0.1, 0.2, 0.3, 0.4, 0.1], [0.2, 0.25, 0.2, 0.3, 0.3]) == [200, 400]
    assert crossing_epochs(epochs, [0.1] * 5, [0.1] * 5) == []
    assert crossing_epochs(epochs, [0.1, 0.2, 0.2, 0.3, 0.3], [0.2, 0.2, 0.2, 0.2, 0.2]) == [300]


def test_find_sentence_matches_tokens_exactly_once():
    data = tiny_dataset()
    assert find_sentence(data, sst.F7_SENTENCE) == 0
    assert find_sentence(padded_dataset(data, 12), sst.F7_SENTENCE) == 0
    assert find_sentence(data, "the best films") == 1
    with pytest.raises(ValueError, match="found 0"):
        find_sentence(data, "the best")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        find_sentence(data, "an unknown word")


def _tiny_config(variant: str = "default") -> RunConfig:
    return RunConfig(data=SSTDataConfig(kind="SST2", mask_padding=variant != "unmasked"),
                     model=ModelConfig(head="FC", d_embed=6, d_key=3),
                     train=TrainConfig(epochs=60, dtype="float32", patience=15, record_every=10))


@pytest.fixture(scope="module", params=["default", "unmasked"])
def tiny_run(request):
    data = tiny_dataset()
    if request.param == "unmasked":
        data = padded_dataset(data, 12)
    from attnlib.train import train

    config = _tiny_config(request.param)
    result = train(config.model, config.train, [data] * 2, [0, 1], trace_words=np.arange(len(VOCAB)), quiet=True)
    return reduce_run(result, config, "SST2", "FC", request.param, data, n_top=5), result, data


def test_reduce_run_keeps_what_the_figures_need(tiny_run):
    run, result, data = tiny_run
    assert set(sst.F7_SENTENCE.split()) <= set(run.word_names)
    assert set(sst.F6_WORDS) <= set(run.word_names)
    for k in range(2):
        last = run.last_index(k)
        scores = result.traced_scores[last, k].copy()
        if run.variant == "default":
            assert PAD_ID not in run.top[k]
            scores[PAD_ID] = -np.inf
        np.testing.assert_array_equal(run.top[k], np.argsort(-scores, kind="stable")[:5])
    col = run.word_names.index("powerful")
    np.testing.assert_array_equal(run.scores[:, :, col], result.traced_scores[:, :, IDX["powerful"]])
    # F7 weights are over the sentence's 12 real tokens, even when unmasked
    np.testing.assert_allclose(run.f7_weights.sum(axis=-1), 1.0, rtol=1e-5)
    # m_w from the unpadded training sentences
    assert run.m_w[run.word_names.index("stupid")] == pytest.approx(2.0)


def test_tables_and_roundtrip(tiny_run, tmp_path):
    run, result, data = tiny_run
    run.provenance = {"config_hash": run.config.config_hash()}
    ps = run.per_seed()
    assert list(ps.seed) == [0, 1]
    np.testing.assert_allclose(ps.test_accuracy, result.final_test_accuracy)
    curves = run.sen_curves(n_top=3)
    np.testing.assert_allclose(curves.theory, theory.sen_norm(curves.score, curves.m_w))
    assert curves.groupby("seed").epoch.max().tolist() == [run.record_epochs[run.last_index(k)] for k in range(2)]
    gaps = run.sen_gaps(n_top=3)
    assert len(gaps) == 6
    shift = run.shift_curves()
    assert set(shift.word) == set(sst.F6_WORDS) and shift.purity.between(0, 1).all()
    f7 = run.single_sentence()
    assert set(f7.word) == {"powerful", "best"}
    crossings = run.f7_crossings()
    assert len(crossings) == 2
    sst_store.save_run(run, tmp_path)
    back = sst_store.load_run("SST2", "FC", run.variant, tmp_path, config=run.config)
    assert back.source == "stored" and back.seeds == [0, 1]
    np.testing.assert_allclose(back.loss, run.loss, rtol=1e-6)
    np.testing.assert_allclose(back.scores, run.scores, rtol=2e-3, atol=1e-4)  # stored in float16
    pd.testing.assert_frame_equal(back.shift_curves(), shift, check_dtype=False)
    meta = json.loads((tmp_path / f"SST2_FC_{run.variant}.json").read_text())
    assert meta["config_hash"] == run.config.config_hash()


def test_metrics_keys(tiny_run):
    run, _, _ = tiny_run
    result = SSTResult({("SST2", "FC", run.variant): run})
    suffix = "" if run.variant == "default" else ".unmasked"
    metrics = result.metrics()
    assert set(metrics) == {f"SST2.Attn-FC.{k}{suffix}" for k in ("test_accuracy", "stopped_epoch", "best_epoch")}
    assert 0 <= metrics[f"SST2.Attn-FC.test_accuracy{suffix}"] <= 1
    table = result.table()
    assert table.paper.iloc[0] == pytest.approx(76.68)
    assert len(result.f6_checks()) == 2 * len(sst.F6_WORDS)


def test_load_or_train_retrains_on_hash_mismatch(tmp_path, monkeypatch):
    """A stale run (its own setting's, intact, trained with another config) is retrained; files that cannot be
    checked against a manifest are refused, never silently retrained over."""
    from attnlib.experiments.sst.storage import StoredRunError, regenerate_manifest

    calls = []
    monkeypatch.setattr(serving, "train_setting", lambda *a, **k: calls.append(a) or "trained")
    names = {"kind": "SST2", "head": "FC", "variant": "default", "config_hash": "not-the-hash"}
    with open(tmp_path / "SST2_FC_default.npz", "wb") as handle:
        np.savez(handle, **{k: np.array(v) for k, v in names.items()})
    (tmp_path / "SST2_FC_default.json").write_text(json.dumps(names))
    with pytest.raises(StoredRunError, match="MANIFEST.json is missing"):
        sst.load_or_train("SST2", "FC", "default", folder=tmp_path)
    assert calls == []
    regenerate_manifest(tmp_path)
    assert sst.load_or_train("SST2", "FC", "default", folder=tmp_path) == "trained"
    assert calls == [("SST2", "FC", "default", sst.SST_SEEDS)]


# --------------------------------------------------------------------------- stored runs

STORED = [s for s in sst.SETTINGS if sst.stored_hash(*s) is not None]
REPLAY_EPOCHS = 20
"""Epochs replayed per stored run by this file's check (a tenth of the book's, which the SST chapter runs)."""


@pytest.fixture(scope="module")
def sst_data():
    """The SST files, or a skip: these tests never download them."""
    from attnlib.data import SSTDataError
    from attnlib.data.sst import find_data_dir

    try:
        return find_data_dir(download=False)
    except SSTDataError:
        pytest.skip("the SST data is not available (attnlib verify-data says where it looks)")


@pytest.mark.parametrize("setting", STORED, ids=["_".join(s) for s in STORED])
def test_stored_run_matches_preset_and_retraining(setting, sst_data):
    """Every stored run has the preset's config hash, passes its checks, and the first epochs of every seed
    retrain to the same training and dev loss. Every committed run carries the best-epoch scores and
    projected embeddings, so its losses and accuracies are recomputed too (loading a run stored before
    that format is tested in test_store). The replay covers the first REPLAY_EPOCHS epochs here: the SST
    chapter replays the full VERIFY_EPOCHS of every stored run in every build."""
    assert sst.stored_hash(*setting) == sst_preset(*setting).config_hash()
    report = sst.verify_stored(*setting, epochs=REPLAY_EPOCHS)
    assert report["epochs_compared"] >= 2
    assert report["ok"], report["failed"]
    assert report["checks"]["replay"]["status"] == "passed"
    assert report["format"] >= 2
    assert report["checks"]["recompute"]["status"] == "passed"


def test_every_variant_has_a_preset():
    for variant in SST_VARIANTS:
        assert sst_preset("SST2", "TC", variant).data.mask_padding == (variant not in ("unmasked", "code"))
    code_tc, code_fc = sst_preset("SST2", "TC", "code"), sst_preset("SST2", "FC", "code")
    assert (code_tc.model.d_embed, code_fc.model.d_embed) == (100, 200)
    assert code_tc.model.embed_init_std == 1e-6 and code_tc.train.patience == 2000


def _spliced_first_step(run: SSTRun, data: Dataset) -> SSTRun:
    """How stored runs got their step-1 snapshot: one more 1-epoch training from the same initialisation,
    its epoch-1 trace inserted after epoch 0 and F6's rows re-sorted by seed, word id and snapshot."""
    from attnlib.train import train

    short = run.config.replace(train={"epochs": 1, "record_every": 1})
    one = train(short.model, short.train, [data] * len(run.seeds), list(run.seeds),
                trace_words=np.arange(len(data.vocab)), quiet=True)
    all1 = one.traced_scores[1]
    out = copy.deepcopy(run)
    out.record_epochs = np.insert(run.record_epochs, 1, 1)
    out.scores = np.insert(run.scores, 1, all1[:, run.words], axis=0)
    out.norms = np.insert(run.norms, 1, one.traced_norms[1][:, run.words], axis=0)
    out.test_accuracy_curve = np.insert(run.test_accuracy_curve, 1, one.test_accuracy[1], axis=0)
    out.f7_weights = np.insert(run.f7_weights, 1, sentence_weights(all1, _ids(sst.F7_SENTENCE)), axis=0)
    if run.pad_weight.size:
        out.pad_weight = np.insert(run.pad_weight, 1, sst.padding_attention(data.train, all1[None])[0], axis=0)
    shift = run.shift.copy()
    shift.loc[shift.snapshot >= 1, "snapshot"] += 1
    frames = [shift]
    for k, seed in enumerate(run.seeds):
        df = attention_shift(data.train, all1[k][None], [IDX[w] for w in sst.F6_WORDS],
                             mask_pad=run.config.data.mask_padding)
        df["snapshot"] = 1
        df.insert(0, "seed_index", k)
        df.insert(1, "seed", seed)
        frames.append(df)
    out.shift = (pd.concat(frames, ignore_index=True).sort_values(["seed_index", "word_id", "snapshot"], kind="stable")
                 .reset_index(drop=True))[shift.columns]
    return out


def test_train_setting_records_step_one_as_the_splice_did(tiny_run, monkeypatch):
    """train_setting asks train() for the step-1 snapshot; the reduced run is the one the stored runs got by
    splicing in a separate 1-epoch training."""
    run, _, data = tiny_run
    monkeypatch.setattr(sst_train, "reduce_run", functools.partial(sst_train.reduce_run, n_top=5))  # 16 words
    assert 1 not in run.record_epochs.tolist()
    old = _spliced_first_step(run, data)
    new = sst.train_setting("SST2", "FC", run.variant, seeds=[0, 1], config=run.config, dataset=data)
    assert new.record_epochs[:3].tolist() == [0, 1, 10]
    np.testing.assert_array_equal(new.record_epochs, old.record_epochs)
    np.testing.assert_array_equal(new.words, old.words)
    np.testing.assert_array_equal(new.top, old.top)
    for name in ("scores", "norms", "test_accuracy_curve", "f7_weights", "pad_weight", "loss", "dev_loss",
                 "final_test_accuracy", "stopped_epoch", "best_epoch"):
        np.testing.assert_allclose(getattr(new, name), getattr(old, name), rtol=1e-6, atol=1e-9, err_msg=name)
    assert new.pad_weight.shape[0] == (len(new.record_epochs) if run.variant == "unmasked" else 0)
    pd.testing.assert_frame_equal(new.shift, old.shift, rtol=1e-6)
    pd.testing.assert_frame_equal(new.shift_curves(), old.shift_curves(), rtol=1e-6)


def test_new_runs_order_f6_rows_as_stored_runs_do(tiny_run):
    """F6's rows go by seed, word id and snapshot, in new runs and in the stored ones."""
    run, _, _ = tiny_run
    order = ["seed_index", "word_id", "snapshot"]
    stored = [sst_store.load_run(*s) for s in STORED if s[0] == "SST2"]
    assert all(1 in r.record_epochs.tolist() for r in stored)  # the step-1 snapshot, as train_setting records it
    for r in [run, *stored]:
        assert list(r.shift.columns) == list(run.shift.columns)
        pd.testing.assert_frame_equal(r.shift, r.shift.sort_values(order, kind="stable").reset_index(drop=True))


@pytest.mark.skipif(not STORED, reason="no stored SST run")
def test_verification_detects_a_changed_trajectory(tmp_path, sst_data):
    import shutil

    setting = STORED[0]
    key = "_".join(setting)
    for name in (f"{key}.npz", f"{key}.json", "MANIFEST.json"):
        shutil.copy(sst.STORE_DIR / name, tmp_path / name)
    good = sst.verify_stored(*setting, folder=tmp_path, epochs=30)
    assert good["ok"] and good["max_rel_diff"] < 1e-5
    run = sst_store.load_run(*setting, folder=tmp_path)
    run.loss = run.loss.copy()
    run.loss[20, 1] *= 1.001  # seed 1: every seed is replayed
    sst_store.save_run(run, tmp_path)  # a deliberate re-store: the manifest follows, the replay does not
    bad = sst.verify_stored(*setting, folder=tmp_path, epochs=30)
    assert not bad["ok"] and bad["checks"]["replay"]["status"] == "failed"


@pytest.mark.skipif(("SST5", "FC", "default") not in STORED, reason="no stored SST5 Attn-FC run")
def test_a_run_without_early_stopping_retrains_the_stored_trajectory(tmp_path, sst_data):
    """The gap diagnostic's runs without early stopping double as a long replay of the stored Attn-FC default
    runs (early stopping never changes an epoch before the stop): same losses, and a changed epoch fails."""
    from attnlib.experiments.sst import analysis as sst_analysis
    from attnlib.experiments.sst import verification as sst_verify

    stored = sst_store.load_run("SST5", "FC", "default")
    dataset = sst.sst_dataset(sst_preset("SST5", "FC", "default"), download=False)
    setting = ("no early stopping", {}, {}, (20, 40))  # a short stand-in for the diagnostic's caps
    fresh = sst_analysis.fc_gap_run("SST5", dataset, stored.seeds, setting)
    assert fresh.dev_loss is None and len(fresh.loss) == 41
    check = sst_verify.require_trajectory(stored, fresh)
    assert check["epochs_compared"] == 41 and check["max_rel_diff"] < 1e-5
    stored.loss = stored.loss.copy()
    stored.loss[33, 2] *= 1.001
    with pytest.raises(sst_verify.VerificationError, match="SST5_FC_default differs from its retraining"):
        sst_verify.require_trajectory(stored, fresh)


@pytest.mark.skipif(("SST5", "FC", "default") not in STORED, reason="no stored SST5 Attn-FC run")
def test_cli_run_sst_serves_stored_runs_and_writes_metrics(tmp_path, capsys):
    from attnlib.cli import main

    assert main(["run", "sst", "--seeds", "3", "--only", "SST5_FC_default", "--out", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / "sst"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics) - {"provenance"} == {f"SST5.Attn-FC.{k}" for k in ("test_accuracy", "stopped_epoch",
                                                                          "best_epoch")}
    assert metrics["provenance"]["config_hashes"] == {"SST5_FC_default": sst_preset("SST5", "FC").config_hash()}
    assert 0.2 < metrics["SST5.Attn-FC.test_accuracy"] < 1
    per_seed = pd.read_csv(folder / "t1_per_seed.csv")
    assert (per_seed.source == "stored").all() and list(per_seed.seed) == [0, 1, 2]
    for stem in ("t1_losses", "f5_gaps", "f5_top12_SST5_FC_default", "f5_top100_SST5_FC_default"):
        assert (folder / f"{stem}.png").stat().st_size > 1000
    assert (folder / "t1.md").read_text().startswith("| dataset")
    out = capsys.readouterr().out
    assert "SST5_FC_default: stored in" in out and "integrity, patience, data, recompute, f5 passed" in out


def test_padding_attention_is_the_share_of_padding_positions_when_scores_tie():
    from attnlib.data import Corpus
    from attnlib.experiments.sst import padding_attention

    corpus = Corpus([np.array([3, 4, 0, 0]), np.array([1, 2, 3, 0])], np.array([0, 1]), 5)
    scores = np.zeros((2, 1, 5))
    scores[1, 0, 0] = np.log(3.0)  # $PAD$ three times as attractive as any word
    weight = padding_attention(corpus, scores)
    assert weight.shape == (2, 1)
    assert weight[0, 0] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert weight[1, 0] == pytest.approx((6 / 8 + 3 / 6) / 2)


def test_available_settings_skip_only_slow_settings_without_a_stored_run(tmp_path):
    run, skipped = sst.available_settings(folder=tmp_path)  # an empty store
    assert set(skipped) == set(sst.SLOW_SETTINGS) and not set(run) & sst.SLOW_SETTINGS
    assert set(run) | set(skipped) == set(sst.SETTINGS)
    stored_run, _ = sst.available_settings()
    assert {s for s in sst.SETTINGS if sst.stored_hash(*s) == sst_preset(*s).config_hash()} <= set(stored_run)


def test_t1_head_pattern_says_which_cells_are_within_the_tolerance() -> None:
    from types import SimpleNamespace

    from attnlib.experiments.sst.experiment import t1_head_pattern
    from attnlib.experiments.sst.settings import T1_TOLERANCE

    def result(fc: tuple[float, float], tc: tuple[float, float]) -> SimpleNamespace:
        rows = [{"variant": "default", "model": model, "dataset": kind, "diff": diff}
                for model, diffs in (("Attn-FC", fc), ("Attn-TC", tc)) for kind, diff in zip(("SST2", "SST5"), diffs)]
        return SimpleNamespace(table=lambda: pd.DataFrame(rows))

    far, near = T1_TOLERANCE + 1.95, T1_TOLERANCE - 0.22
    text = t1_head_pattern(result((far, near), (0.13, -0.24)))
    assert text.startswith("1 of the 2 Attn-FC cells is within the tolerance (SST5), and both are above the paper")
    assert "both Attn-TC cells are within the tolerance, on both sides of the paper (SST2 +0.13, SST5 -0.24" in text
    assert t1_head_pattern(result((far, far), (-far, -near))).startswith(
        "both Attn-FC cells are outside the tolerance, above the paper")
