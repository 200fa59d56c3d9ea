"""attnlib.experiments.sst.analysis on tiny SST-like runs (masked and unmasked padding)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attnlib.config import ModelConfig, RunConfig, SSTDataConfig, TrainConfig
from attnlib.data.corpus import Corpus, Dataset
from attnlib.data.transforms import PAD_ID, PADDED_LENGTH, padded_dataset
from attnlib.experiments.sst import analysis as sa
from attnlib.experiments.sst import reduce_run
from attnlib.train import train

VOCAB = ["$PAD$", "a", "powerful", "sequel", "and", "one", "of", "the", "best", "films", "year", "stupid", "mess",
         "solid", "suffers", "dull"]
IDX = {w: i for i, w in enumerate(VOCAB)}
TRAIN = [("a powerful sequel and one of the best films of the year", 1), ("the best films", 1),
         ("a solid sequel", 1), ("a stupid mess", 0), ("the year suffers", 0), ("dull and stupid", 0),
         ("powerful and solid", 1), ("the mess of the year", 0)]
PADDED = 12


def _dataset() -> Dataset:
    def corpus(rows):
        return Corpus([np.array([IDX[w] for w in t.split()]) for t, _ in rows], np.array([y for _, y in rows]),
                      len(VOCAB))
    return Dataset("SST2", VOCAB, 2, {"train": corpus(TRAIN), "dev": corpus(TRAIN[:4]), "test": corpus(TRAIN[4:])})


@pytest.fixture(scope="module")
def runs():
    out = {}
    for variant in ("default", "unmasked"):
        data = _dataset() if variant == "default" else padded_dataset(_dataset(), PADDED)
        config = RunConfig(data=SSTDataConfig(kind="SST2", mask_padding=variant != "unmasked"),
                           model=ModelConfig(head="FC", d_embed=6, d_key=3),
                           train=TrainConfig(epochs=60, dtype="float32", patience=15, record_every=10))
        result = train(config.model, config.train, [data] * 2, [0, 1], trace_words=np.arange(len(VOCAB)), quiet=True)
        out[("SST2", "FC", variant)] = reduce_run(result, config, "SST2", "FC", variant, data, n_top=5)
    return out


def test_plateau_growth_is_the_top_singular_value_of_the_label_correlation():
    data = _dataset()
    got = sa.plateau_growth(data, lr=0.1)
    c = data.train
    dense = np.asarray(c.counts.todense(), dtype=float) / np.asarray(c.lengths, dtype=float)[:, None]
    g = 0.5 - np.eye(2)[c.labels]
    sigma = np.linalg.norm(dense.T @ g / len(c), 2)
    assert got["sigma"] == pytest.approx(sigma)
    assert got["efold"] == pytest.approx(1 / (0.1 * sigma))


def test_pad_tables_cover_only_unmasked_runs(runs):
    weights = sa.pad_weights(runs)
    scores = sa.pad_scores(runs)
    assert set(weights.variant) == {"unmasked"} == set(scores.variant)
    assert list(weights.seed) == [0, 1]
    # at epoch 0 every score is 0, so PAD's weight is the share of padding positions
    lengths = np.array([len(t.split()) for t, _ in TRAIN])
    np.testing.assert_allclose(weights["PAD weight at epoch 0"], np.mean((PADDED - lengths) / PADDED), rtol=1e-5)
    run = runs[("SST2", "FC", "unmasked")]
    col = run.word_names.index("$PAD$")
    for k, row in scores.iterrows():
        assert row["PAD score at the end"] == pytest.approx(run.scores[run.last_index(k), k, col])
        assert row["largest PAD score"] >= row["PAD score at the end"]
        rank = np.flatnonzero(run.top[k] == PAD_ID)
        assert row["PAD rank among the top words"] == (str(rank[0] + 1) if rank.size else "> 5")


def test_early_losses_and_plateau_tables(runs):
    early = sa.early_losses(runs, epochs=5)
    assert len(early) == 4
    run = runs[("SST2", "FC", "default")]
    assert early.loc[0, "train loss at epoch 0"] == pytest.approx(run.loss[0, 0])
    assert early.loc[0, "largest train loss, epochs 1-5"] == pytest.approx(np.nanmax(run.loss[1:6, 0]))
    per_seed = pd.concat([r.per_seed() for r in runs.values()], ignore_index=True)
    plateau = sa.plateau_table(per_seed)
    assert len(plateau) == 2
    assert plateau.loc[0, "test accuracy (%)"] == pytest.approx(100 * run.final_test_accuracy.mean())
    seeds = sa.seed_table(per_seed, "Attn-FC")
    assert len(seeds) == 4 and set(seeds["stopped by"]) <= {"the epoch cap", "early stopping"}
    capped = sa.capped_runs(per_seed)
    assert (capped.stopped_epoch >= 60).all()
    assert len(capped) == int(per_seed.hit_cap.sum())


def test_m_choice_compares_the_two_m(runs):
    table = sa.m_choice(runs, top=3, padded_length=PADDED)
    assert list(table.m) == ["m_w (real tokens)", f"m = {PADDED - 1} (padded length)"]
    run = runs[("SST2", "FC", "unmasked")]
    g = run.sen_gaps(m=float(PADDED - 1))
    expected = g[g["rank"] <= 3].groupby("seed").rel_gap.median().mean()
    assert table.iloc[1]["median gap, mean over seeds"] == pytest.approx(expected)
    closer = sa.m_closer(table)
    assert closer in ([], ["SST2 Attn-FC (unmasked)"])
    assert (closer != []) == (table.iloc[1]["median gap, mean over seeds"] < table.iloc[0]["median gap, mean over seeds"])


def test_variant_accuracy_pivots_the_t1_table():
    table = pd.DataFrame([
        {"dataset": "SST2", "model": "Attn-FC", "variant": "default", "test_mean": 80.0, "test_std": 0.1, "paper": 76.68},
        {"dataset": "SST2", "model": "Attn-FC", "variant": "code", "test_mean": 79.5, "test_std": 0.25, "paper": 76.68},
        {"dataset": "SST5", "model": "Attn-TC", "variant": "default", "test_mean": 41.0, "test_std": 1.0, "paper": 40.53}])
    out = sa.variant_accuracy(table)
    assert list(out.columns) == ["dataset", "model", "paper (%)", "default (%)", "patience2000 (%)", "unmasked (%)",
                                 "code (%)"]
    first = out.iloc[0]
    assert (first.dataset, first.model, first["paper (%)"]) == ("SST2", "Attn-FC", "76.68")
    assert first["default (%)"] == "80.00 ± 0.10" and first["code (%)"] == "79.50 ± 0.25"
    assert first["unmasked (%)"] == "not run"
    assert out.iloc[1]["default (%)"] == "41.00 ± 1.00"


def test_label_prior():
    data = _dataset()
    assert sa.label_prior(data, "train") == pytest.approx(4 / 8)
    assert sa.label_prior(data, "dev") == pytest.approx(3 / 4)  # the first four training sentences
    assert sa.label_prior(data, "train", label=0) == pytest.approx(0.5)


def test_dev_loss_slopes_recover_a_known_trend(runs):
    import dataclasses
    run = runs[("SST2", "FC", "default")]
    epochs = np.arange(run.dev_loss.shape[0], dtype=np.float64)
    trend = (0.69 + 2e-6 * epochs)[:, None] * np.ones((1, len(run.seeds)))
    rising = dataclasses.replace(run, dev_loss=trend.astype(np.float32), stopped_epoch=np.array([50, 20]))
    out = sa.dev_loss_slopes([rising], start=5, end=40)
    assert list(out.seed) == [0]  # seed 1 stopped before epoch 39
    row = out.iloc[0]
    assert row["dev loss slope per epoch"] == pytest.approx(2e-6, rel=0.05)
    assert row["float32 spacing"] == pytest.approx(float(np.spacing(np.float32(0.69 + 2e-6 * 39))))
    assert row["slope / spacing"] == pytest.approx(row["dev loss slope per epoch"] / row["float32 spacing"])
    assert row["dev loss"] == "rises" and row["padding"] == "masked"


def test_first_reaching_finds_the_first_snapshot_at_the_target(runs):
    run = runs[("SST2", "FC", "default")]
    acc = run.test_accuracy_curve[:, 0]
    target = float(np.max(acc[: run.last_index(0) + 1]))
    out = sa.first_reaching(run, target, window=10)
    first = int(np.flatnonzero(acc >= target)[0])
    e = int(run.record_epochs[first])
    assert out.loc[0, "epoch"] == e
    assert out.loc[0, "test accuracy there (%)"] == pytest.approx(100 * acc[first])
    if e >= 10:
        assert out.loc[0, "dev loss change before it"] == pytest.approx(run.dev_loss[e, 0] - run.dev_loss[e - 10, 0])
    never = sa.first_reaching(run, 1.01)
    assert never.epoch.isna().all()
    curves = run.accuracy_curves()
    assert set(curves.seed) == {0, 1}
    assert curves[curves.seed == 0]["epoch"].max() <= run.stopped_epoch[0]


def test_finding_figures_label_every_axis(runs):
    import matplotlib.pyplot as plt

    from attnlib.plots.sst_findings import plot_accuracy_against_epoch, plot_dev_loss_trend
    fig = plot_accuracy_against_epoch([runs[("SST2", "FC", "default")]], {"SST2": 76.68})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "test accuracy (%)"
    assert any("paper" in t.get_text() for t in ax.get_legend().get_texts())
    fig2 = plot_dev_loss_trend(list(runs.values()), start=2, end=20)
    labels = [t.get_text() for t in fig2.axes[0].get_legend().get_texts()]
    assert any("unmasked" in t for t in labels) and any("float32" in t for t in labels)
    plt.close("all")


# --------------------------------------------------------------------------- the logit against the padding share


def _params_run(variant: str):
    """A tiny Attn-TC run with the per-word scores and projected embeddings at its best epoch, its dataset and the
    engine's result (float64, so that the engine's logits are an exact reference). Its dev set is the training set,
    so that the dev loss falls, the best epoch is the last and the scores have moved away from 0."""
    from attnlib.experiments.sst.training import at_best

    plain = _dataset()
    plain = Dataset("SST2", VOCAB, 2, {"train": plain.train, "dev": plain.train, "test": plain.splits["test"]})
    data = plain if variant == "default" else padded_dataset(plain, PADDED)
    config = RunConfig(data=SSTDataConfig(kind="SST2", mask_padding=variant != "unmasked"),
                       model=ModelConfig(head="TC", d_embed=6, d_key=3),
                       train=TrainConfig(epochs=60, lr=1.0, dtype="float64", patience=60, record_every=10))
    result = train(config.model, config.train, [data] * 2, [0, 1], trace_words=np.arange(len(VOCAB)), quiet=True,
                   keep_params=True)
    run = reduce_run(result, config, "SST2", "TC", variant, data, n_top=5)
    run.best_scores, run.best_projected, run.at_best = at_best(result, config, data)
    return run, data, result


@pytest.fixture(scope="module")
def params_runs():
    return {variant: _params_run(variant) for variant in ("unmasked", "default")}


def _engine_logits(run, data, result, split: str) -> np.ndarray:
    """(S, n) positive-minus-negative logits from the engine's own forward pass at the restored parameters."""
    import torch

    from attnlib.model import Batch, forward

    params = result.params
    batch = Batch.from_corpora([data.splits[split]] * len(run.seeds), params.embeddings.dtype,
                               params.embeddings.device)
    with torch.no_grad():
        logits = forward(run.config.model.head, params, batch).logits.cpu().numpy()
    return logits[:, :, 1] - logits[:, :, 0]


def test_sentence_logits_are_the_engines_and_the_padding_share_is_counted(params_runs):
    run, data, result = params_runs["unmasked"]
    table = sa.sentence_logits(run, data)
    engine = _engine_logits(run, data, result, "dev")
    texts = [t for t, _ in TRAIN]
    lengths = np.array([len(t.split()) for t in texts])
    for k, seed in enumerate(run.seeds):
        rows = table[table.seed == seed]
        scale = np.abs(engine[k]).max()
        np.testing.assert_allclose(rows["logit"], engine[k], rtol=1e-5, atol=1e-6 * scale)
        np.testing.assert_allclose(rows["P(positive)"], 1 / (1 + np.exp(-engine[k])), rtol=1e-6)
        np.testing.assert_array_equal(rows["real length"], lengths)
        np.testing.assert_allclose(rows["padding share"], (PADDED - lengths) / PADDED)
        # PAD's attention: its positions' softmax weights over each padded sentence, position by position
        s = result.final_scores[k]
        expected = []
        for text in texts:
            ids = np.array([IDX[w] for w in text.split()] + [PAD_ID] * (PADDED - len(text.split())))
            w = np.exp(s[ids] - s[ids].max())
            expected.append(w[ids == PAD_ID].sum() / w.sum())
        np.testing.assert_allclose(rows["PAD attention"], expected, rtol=1e-5)
    assert list(table.columns[:3]) == ["seed", "sentence", "label"]
    assert table.label.tolist() == [y for _, y in TRAIN] * 2
    assert (run.best_epoch == 60).all() and np.abs(run.best_scores).max() > 0.1  # attention no longer uniform


def test_logit_correlations_and_the_summary_follow_the_engine(params_runs):
    from attnlib.experiments.sst.verification import split_metrics

    run, data, result = params_runs["unmasked"]
    summary = sa.padding_logit_summary(run, data)
    engine = _engine_logits(run, data, result, "dev")
    lengths = np.array([len(t.split()) for t, _ in TRAIN])
    assert summary.seed.tolist() == [0, 1] and (summary.sentences == len(TRAIN)).all()
    assert summary["best epoch"].tolist() == [int(b) for b in run.best_epoch]
    for k in range(2):
        row = summary.iloc[k]
        assert row["r(logit, padding share)"] == pytest.approx(np.corrcoef(engine[k], (PADDED - lengths) / PADDED)[0, 1],
                                                               abs=1e-6)
        assert row["r(logit, real length)"] == pytest.approx(np.corrcoef(engine[k], lengths)[0, 1], abs=1e-6)
        assert row["mean P(positive) (%)"] == pytest.approx(100 * np.mean(1 / (1 + np.exp(-engine[k]))), rel=1e-6)
        own = result.params.embeddings[k].numpy() @ result.params.head["U"][k].numpy()
        assert row["PAD's own logit"] == pytest.approx(own[PAD_ID, 1] - own[PAD_ID, 0], rel=1e-5)
        # the loss derivatives by central differences of the recomputed mean loss, moving PAD's row of E U
        for split in ("dev", "train"):
            h = 1e-5
            projected = run.best_projected[k].astype(np.float64)
            up, down = projected.copy(), projected.copy()
            up[PAD_ID, 1] += h / 2
            down[PAD_ID, 1] -= h / 2
            corpus = data.splits[split]
            numeric = (split_metrics(corpus, run.best_scores[k], up)[0]
                       - split_metrics(corpus, run.best_scores[k], down)[0]) / h
            assert row[f"d {split} loss / d PAD's logit"] == pytest.approx(numeric, rel=1e-4, abs=1e-9)


def test_masked_padding_has_no_padding_share_and_no_correlation_with_it(params_runs):
    run, data, result = params_runs["default"]
    table = sa.sentence_logits(run, data)
    assert (table["padding share"] == 0).all() and (table["PAD attention"] == 0).all()
    engine = _engine_logits(run, data, result, "dev")
    np.testing.assert_allclose(table[table.seed == 0]["logit"], engine[0], rtol=1e-5, atol=1e-6 * np.abs(engine[0]).max())
    corr = sa.logit_correlations(table)
    assert corr["r(logit, padding share)"].isna().all()
    assert corr.iloc[0]["r(logit, real length)"] == pytest.approx(
        np.corrcoef(engine[0], [len(t.split()) for t, _ in TRAIN])[0, 1], abs=1e-6)


def test_sentence_logits_refuse_runs_and_datasets_they_cannot_recompute(runs, params_runs):
    import dataclasses

    with pytest.raises(ValueError, match="no per-word scores and projected embeddings"):
        sa.sentence_logits(runs[("SST2", "FC", "unmasked")], padded_dataset(_dataset(), PADDED))
    run, data, _ = params_runs["unmasked"]
    with pytest.raises(ValueError, match="trained on padded sentences"):
        sa.sentence_logits(run, _dataset())
    masked, _, _ = params_runs["default"]
    with pytest.raises(ValueError, match=r"trained on masked \(plain\) sentences"):
        sa.sentence_logits(masked, data)
    five = dataclasses.replace(run, best_projected=np.zeros((2, len(VOCAB), 5), np.float32))
    with pytest.raises(ValueError, match="two classes"):
        sa.sentence_logits(five, data)


def test_logit_figure_labels_its_axes_and_gives_the_correlation(params_runs):
    import matplotlib.pyplot as plt

    from attnlib.plots.sst import plot_logit_against_padding
    from attnlib.plots.style import FIG_WIDTH, MAX_ASPECT, MIN_FONT_PT, min_font_pt

    run, data, _ = params_runs["unmasked"]
    table = sa.sentence_logits(run, data)
    fig = plot_logit_against_padding(table, sa.logit_correlations(table), run.name, {"training prior": 50.0, "dev prior": 75.0})
    left, right = fig.axes
    assert left.get_xlabel().startswith("padding share") and left.get_ylabel().startswith("logit")
    assert right.get_ylabel() == "P(positive) (%)"
    r = sa.logit_correlations(table)["r(logit, padding share)"]
    assert [t.get_text() for t in left.get_legend().get_texts()] == [
        f"Attn-TC, seed {s}: r = {v:.4f}" for s, v in zip(run.seeds, r)]
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["training prior: 50.0 %", "dev prior: 75.0 %"]
    width, height = fig.get_size_inches()
    assert width <= FIG_WIDTH and width / height <= MAX_ASPECT and min_font_pt(fig) >= MIN_FONT_PT
    plt.close("all")


STORED_UNMASKED = ("SST2", "TC", "unmasked")


@pytest.fixture(scope="module")
def stored_unmasked():
    """The stored SST2 Attn-TC unmasked run and its dataset, or a skip: these tests never download the data."""
    from attnlib.data import SSTDataError
    from attnlib.experiments.sst.storage import StoredRunError, load_run
    from attnlib.experiments.sst.training import sst_dataset

    try:
        run = load_run(*STORED_UNMASKED)
    except StoredRunError as error:
        pytest.skip(f"no usable stored {'_'.join(STORED_UNMASKED)} run ({str(error).splitlines()[0]})")
    if not run.best_scores.size:
        pytest.skip(f"the stored {'_'.join(STORED_UNMASKED)} run predates the arrays at the best epoch")
    try:
        return run, sst_dataset(run.config, download=False)
    except SSTDataError:
        pytest.skip("the SST data is not available (attnlib verify-data says where it looks)")


def test_stored_unmasked_logits_give_the_stored_dev_loss(stored_unmasked):
    run, data = stored_unmasked
    table = sa.sentence_logits(run, data)
    summary = sa.padding_logit_summary(run, data)
    for k, seed in enumerate(run.seeds):
        rows = table[table.seed == seed]
        p = np.where(rows.label == 1, rows["P(positive)"], 1 - rows["P(positive)"])
        assert -np.mean(np.log(p)) == pytest.approx(float(run.at_best["dev_loss"][k]), rel=1e-4)  # the engine's
        assert (rows["padded length"] == PADDED_LENGTH).all()
    # one padded length for all: the padding share is 1 - real length / padded length
    np.testing.assert_allclose(summary["r(logit, padding share)"], -summary["r(logit, real length)"], atol=1e-9)


def test_the_pad_term_share_and_score_spread_follow_from_the_logits(params_runs):
    """The share of the logit's variance carried by PAD's term, and how far other scores are from PAD's."""
    run, data, _ = params_runs["unmasked"]
    table = sa.sentence_logits(run, data)
    summary = sa.padding_logit_summary(run, data)
    present = np.flatnonzero(np.asarray(data.splits["dev"].counts.sum(axis=0)).ravel() > 0)
    for k, seed in enumerate(run.seeds):
        rows = table[table.seed == seed]
        own = float(run.best_projected[k, PAD_ID, 1]) - float(run.best_projected[k, PAD_ID, 0])
        pad_term = rows["PAD attention"].to_numpy() * own
        rest = rows["logit"].to_numpy() - pad_term
        expected = 100 * (1 - rest.var() / rows["logit"].to_numpy().var())
        assert summary["logit variance carried by the PAD term (%)"].iloc[k] == pytest.approx(expected)
        others = present[present != PAD_ID]
        spread = np.abs(run.best_scores[k, others].astype(float) - float(run.best_scores[k, PAD_ID])).max()
        assert summary["largest |score − PAD's score|"].iloc[k] == pytest.approx(spread)


def _curve_run(curve: np.ndarray, best: int, stop: int, cap: int = 10_000):
    """The fields :func:`sa.rounding_stops` reads, for one seed with the dev-loss curve ``curve``."""
    from types import SimpleNamespace

    return SimpleNamespace(kind="SST5", name="Attn-TC", variant="unmasked", seeds=[0], best_epoch=np.array([best]),
                           stopped_epoch=np.array([stop]), dev_loss=np.asarray(curve, np.float32)[:, None],
                           final_test_accuracy=np.array([0.25]),
                           config=SimpleNamespace(train=SimpleNamespace(epochs=cap)))


def test_rounding_stops_tells_a_rounded_plateau_from_a_rise_and_the_cap():
    spacing = float(np.spacing(np.float32(1.5)))
    t = np.arange(3000, dtype=np.float64)
    # a loss that improves by a tenth of a spacing per epoch: float32 shows it as steps every ~10 epochs
    plateau = 1.5 - 0.1 * spacing * np.minimum(t, 2800)
    # one that falls by 5 spacings per epoch to its best at 2800, then rises by 2 spacings per epoch
    rising = np.where(t <= 2800, 1.5 - 5 * spacing * t, 1.5 - 5 * spacing * 2800 + 2 * spacing * (t - 2800))
    table = sa.rounding_stops([_curve_run(plateau, 2800, 2900), _curve_run(rising, 2800, 2900),
                               _curve_run(rising, 2800, 2900, cap=2900)], window=2000)
    assert table["stopped by"].tolist() == ["float32 rounding", "a rise of the dev loss", "the epoch cap"]
    slopes = table["slope before best (spacings per epoch)"].to_numpy()
    assert abs(slopes[0]) < sa.ROUNDING_SLOPE and slopes[1] == pytest.approx(-5 * spacing / np.spacing(np.float32(
        rising[2800])), rel=0.02)
    assert table["epochs without change (%)"].iloc[0] > 80 and table["epochs without change (%)"].iloc[1] == 0
    assert table["rise after best (spacings)"].iloc[0] == 0
    assert table["rise after best (spacings)"].iloc[1] == pytest.approx(200 * spacing / np.spacing(np.float32(
        rising[2800])), rel=0.02)


def test_score_turns_finds_the_words_that_rise_and_fall_back():
    from attnlib.experiments.sst import TURN_DROP, score_turns
    epochs = [0, 100, 200, 300]
    rows = []
    for rank, word, scores in ((1, "rises", [0.0, 0.2, 0.4, 0.5]), (2, "turns", [0.0, 0.8, 0.6, 0.3]),
                               (3, "dips", [0.0, 0.5, 0.45, 0.45])):
        for epoch, score in zip(epochs, scores):
            rows.append({"seed": 0, "rank": rank, "word": word, "epoch": epoch, "score": score, "norm": 2 * score,
                         "theory": 2 * score + 0.1})
    out = score_turns(pd.DataFrame(rows))
    assert list(out.word) == ["turns"]  # "dips" ends at 0.9 of its peak: above TURN_DROP
    assert TURN_DROP < 0.9
    turn = out.iloc[0]
    assert (turn.peak_epoch, turn.peak_score, turn.last_epoch, turn.last_score) == (100, 0.8, 300, 0.3)
    assert turn.last_norm == 0.6 and turn.last_theory == pytest.approx(0.7)


def test_crossings_summary_counts_seeds_and_leaders():
    from attnlib.experiments.sst import crossings_summary
    crossings = pd.DataFrame([
        {"model": "Attn-FC", "variant": "default", "seed": 0, "crossings": [3400], "first_crossing": 3400,
         "leader_first": "best", "leader_last": "powerful"},
        {"model": "Attn-FC", "variant": "default", "seed": 1, "crossings": [5200], "first_crossing": 5200,
         "leader_first": "best", "leader_last": "powerful"},
        {"model": "Attn-TC", "variant": "code", "seed": 0, "crossings": [], "first_crossing": None,
         "leader_first": "powerful", "leader_last": "powerful"}])
    out = crossings_summary(crossings).set_index(["model", "variant"])
    assert out.loc[("Attn-FC", "default"), "seeds crossing"] == 2
    assert out.loc[("Attn-FC", "default"), "first crossing (epoch)"] == "3400 to 5200"
    assert out.loc[("Attn-FC", "default"), "ahead first"] == "best (2)"
    assert out.loc[("Attn-TC", "code"), "first crossing (epoch)"] == "–"
    assert out.loc[("Attn-TC", "code"), "ahead at the end"] == "powerful (1)"


def test_fc_gap_diagnostic_reads_each_cap_as_a_run_stopped_there(runs):
    """Each cap's accuracy is what a run trained to that cap without early stopping ends with; the verdicts
    follow from the paper's values and the tolerance."""
    from attnlib import paper
    from attnlib.config import sst_preset

    data = _dataset()
    settings = (("no early stopping", {}, {}, (20, 40)), ("one-hot", {"fc_init": "onehot"}, {}, (20,)),
                ("lr 0.05", {}, {"lr": 0.05}, (20,)))
    reference = {("SST2", "FC", "default"): runs[("SST2", "FC", "default")]}
    table = sa.fc_gap_diagnostic(reference, {"SST2": data}, [0, 1], tolerance=2.0, settings=settings)
    assert list(table.setting) == ["the paper's setting (early stopping, patience 100)", "no early stopping, 20 epochs",
                                   "no early stopping, 40 epochs", "one-hot, 20 epochs", "lr 0.05, 20 epochs"]
    for label, model, train_changes, cap in (("no early stopping, 40 epochs", {}, {}, 40),
                                             ("one-hot, 20 epochs", {"fc_init": "onehot"}, {}, 20),
                                             ("lr 0.05, 20 epochs", {}, {"lr": 0.05}, 20)):
        config = sst_preset("SST2", "FC", "default").replace(model=model, train={**train_changes, "epochs": cap,
                                                                                  "patience": None})
        alone = train(config.model, config.train, [data] * 2, [0, 1], quiet=True)
        got = table[table.setting == label].iloc[0]
        assert got["Attn-FC (%)"] == pytest.approx(100 * np.mean(alone.final_test_accuracy))
    target = 100 * paper.SST_TEST_ACCURACY[("SST2", "Attn-FC")]
    assert (table["Attn-FC within"] == ((table["Attn-FC (%)"] - target).abs() <= 2.0)).all()
    assert table["Attn-TC (%)"].isna().all()  # no Attn-TC run given
    assert table[table.setting.str.startswith("lr")]["Attn-TC note"].str.contains("not measured").all()
    verdicts = sa.fc_gap_verdicts(table)
    assert list(verdicts.setting) == list(dict.fromkeys(table.setting))
    assert verdicts["Attn-TC within on every dataset"].isna().all()


# --------------------------------------------------------------------------- the chapter's glued values


def _report(setting: str, recompute: str) -> dict:
    checks = {"integrity": {"status": "passed", "detail": ""}, "recompute": {"status": recompute, "detail": "old"}}
    return {"setting": setting, "checks": checks, "max_rel_diff": 0.0, "ok": True, "failed": []}


def test_served_values_name_what_was_stored_retrained_recomputed_and_skipped():
    provenance = pd.DataFrame([
        {"setting": "SST2_FC_default", "source": "retrained", "git commit": "abc", "same | as stored": True},
        {"setting": "SST2_TC_default", "source": "stored", "git commit": None, "same | as stored": None},
        {"setting": "SST5_TC_default", "source": "stored", "git commit": "def", "same | as stored": False}])
    reports = [_report("SST2_TC_default", "passed"), _report("SST5_TC_default", "not available")]
    out = sa.served_values(provenance, reports, [("SST2", "TC", "code")])
    assert out["retrained_list"] == "`SST2_FC_default`"
    assert out["stored_list"] == "`SST2_TC_default`, `SST5_TC_default`"
    assert out["recomputed_list"] == "`SST2_TC_default`"
    assert out["not_recomputable_sentence"] == "Not recomputable, because stored before that format: `SST5_TC_default`."
    assert out["skipped_list"] == "`SST2_TC_code`"
    assert out["verification_table"].splitlines()[0] == "| setting | integrity | recompute | replay max rel. diff |"
    rows = out["provenance_table"].splitlines()
    assert r"same \| as stored" in rows[0]  # a pipe in a heading would end its cell
    assert [r.split("|")[4].strip() for r in rows[2:]] == ["yes", "", "no"]  # missing values are empty
    assert (out["compare_epochs"], out["compare_tie"]) == (sa.EPOCH_TOLERANCE, sa.TIE_RTOL)
    assert out["compare_accuracy"] == pytest.approx(100 * sa.ACCURACY_TOLERANCE)
    # a stored run that was not verified is not listed as served and verified; nothing skipped reads "none"
    none = sa.served_values(provenance.iloc[:2], [], [])
    assert (none["stored_list"], none["recomputed_list"], none["skipped_list"]) == ("none", "none", "none")
    assert none["not_recomputable_sentence"].startswith("That is every stored run")
    assert none["verification_table"] == ""


def test_t1_values_per_setting_and_for_the_paper_setting(runs):
    result = sa.SSTResult(runs)
    out = sa.t1_values(result)
    for (kind, head, variant), run in runs.items():
        key = f"{kind}_{head}_{variant}".lower()
        acc = 100 * run.final_test_accuracy
        assert out[f"{key}_acc"] == f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}"
        paper_value = 100 * sa.paper.SST_TEST_ACCURACY[(kind, "Attn-FC")]
        assert out[f"{key}_diff"] == pytest.approx(acc.mean() - paper_value)
        assert out[f"{key}_stop"] == pytest.approx(run.stopped_epoch.mean())
        assert isinstance(out[f"{key}_best"], float)
    diff = out["sst2_fc_default_diff"]
    within = abs(diff) <= sa.T1_TOLERANCE
    assert (out["n_default_cells"], out["n_default_within"]) == (1, int(within))
    assert out["missed_cells"] == ("none" if within else f"SST2 Attn-FC ({diff:+.1f} points)")
    assert len(out["t1_cells"].splitlines()) == 1
    assert ("**outside**" in out["t1_cells"]) != within and f"±{sa.T1_TOLERANCE:g}-point" in out["t1_cells"]
    assert out["epoch_cap"] == 60 and out["t1_tol"] == sa.T1_TOLERANCE
    capped = sa.capped_runs(result.per_seed())
    assert (out["capped_text"] == "none") == capped.empty
    assert out["capped_text"].count("seed ") == len(capped)
    assert f"±{sa.T1_TOLERANCE:g} points" in out["t1_long"].splitlines()[0]
    assert len(out["per_seed_table"].splitlines()) == 2 + 4  # heading, rule, two runs of two seeds


def test_the_long_t1_and_per_seed_tables_read_as_words():
    table = pd.DataFrame([{"dataset": "SST2", "model": "Attn-FC", "variant": "default", "seeds": 3, "test_mean": 80.0,
                           "test_std": 0.1, "paper": 76.68, "diff": 3.32, "within_2": False, "best_epoch_mean": 10.0,
                           "stopped_epoch_mean": 110.0, "hit_cap": True, "source": "stored"}])
    long = sa.t1_long_table(table, tolerance=4.0)
    assert long.iloc[0]["±4 points"] == "outside" and long.iloc[0]["a seed hit the cap"] == "yes"
    assert list(long.columns[:5]) == ["dataset", "model", "variant", "seeds", "test acc. (%)"]
    per_seed = pd.DataFrame([{"dataset": "SST2", "model": "Attn-FC", "variant": "default", "seed": 0,
                              "test_accuracy": 0.80123, "best_epoch": 5, "stopped_epoch": 105,
                              "train_loss_at_best": 0.123456, "dev_loss_at_best": 0.2, "query_norm": 1.23456,
                              "hit_cap": False, "source": "retrained", "left_plateau_epoch": np.nan}])
    row = sa.per_seed_details(per_seed).iloc[0]
    assert (row["test acc. (%)"], row["train loss at best"], row["‖q‖"]) == (80.12, 0.1235, 1.235)
    assert row["hit the cap"] == "no" and "left_plateau_epoch" not in row.index


def _fc_table(code_diffs: dict[str, float]) -> pd.DataFrame:
    rows = []
    for kind, paper_value in (("SST2", 76.68), ("SST5", 38.49)):
        for variant, diff in (("default", 4.0 if kind == "SST2" else 1.0), ("code", code_diffs.get(kind))):
            if diff is None:
                continue
            rows.append({"dataset": kind, "model": "Attn-FC", "variant": variant, "test_mean": paper_value + diff,
                         "test_std": 0.5, "test_min": paper_value + diff - 0.5, "test_max": paper_value + diff + 0.5,
                         "paper": paper_value, "diff": diff, "stopped_epoch_mean": 100.0})
    return pd.DataFrame(rows)


def test_fc_values_judge_the_code_variant_against_the_tolerance():
    per_seed = pd.DataFrame({"dataset": ["SST2", "SST2"], "model": ["Attn-FC"] * 2, "variant": ["unmasked"] * 2,
                             "seed": [0, 1], "best_epoch": [0, 40], "test_accuracy": [0.499, 0.8]})
    out = sa.fc_values(_fc_table({"SST2": 3.5, "SST5": 0.5}), per_seed)
    assert len(out["fc_lines"].splitlines()) == 4 and out["fc_lines"].startswith("* SST2, default: 80.68 ± 0.50 %")
    assert "SST2 80.18 % (+3.50 points, outside the tolerance) and SST5 38.99 % (+0.50 points, within" \
        in out["fc_code_verdict"] and out["fc_code_verdict"].endswith("do not explain the SST2 gap either.")
    assert out["fc_seed_std_max"] == "0.50" and out["fc_gap_in_stds"] == "2"  # SST5: 1.0 / 0.5
    assert out["stuck_runs"] == "SST2 Attn-FC unmasked seed 0 (49.9 %)"
    fits = sa.fc_values(_fc_table({"SST2": 1.0}), per_seed.iloc[1:])
    assert fits["fc_code_verdict"].endswith("so the code's settings do account for the SST2 gap.")
    assert fits["stuck_runs"] == "none"
    assert sa.fc_values(_fc_table({}), per_seed)["fc_code_verdict"] == "The `code` variant is not available in this build."


def test_fc_reach_values_summarise_where_each_seed_first_reaches_the_paper(runs):
    run = runs[("SST2", "FC", "default")]
    target = sa.paper.SST_TEST_ACCURACY[("SST2", "Attn-FC")]
    assert sa.paper_accuracies([run]) == {"SST2": pytest.approx(100 * target)}
    out = sa.fc_reach_values([run])
    reach = sa.first_reaching(run, target)
    assert out["fc_reach_window"] == sa.REACH_WINDOW
    assert out["fc_reach_n"] == reach["dev loss change before it"].notna().sum()
    assert out["fc_reach_falling"] == int((reach["dev loss change before it"] < 0).sum())
    epochs = ", ".join("never" if np.isnan(e) else f"{e:.0f}" for e in reach.epoch)
    assert out["fc_reach_text"] == f"SST2 at epochs {epochs} (best epochs {', '.join(map(str, run.best_epoch))})"
    assert len(out["fc_reach_table"].splitlines()) == 2 + len(run.seeds)


def test_fc_long_replay_values_hold_a_stored_run_to_its_retraining():
    from types import SimpleNamespace

    from attnlib.config import sst_preset
    from attnlib.experiments.sst.verification import VerificationError

    data = _dataset()
    config = sst_preset("SST2", "FC", "default").replace(train={"epochs": 40, "patience": 5})
    early = train(config.model, config.train, [data] * 2, [0, 1], quiet=True)
    stored = SimpleNamespace(key="SST2_FC_default", source="stored", seeds=[0, 1], loss=early.loss,
                             dev_loss=early.dev_loss, stopped_epoch=early.stopped_epoch)
    setting = ("no early stopping", {}, {}, (20, 40))
    out = sa.fc_long_replay_values({("SST2", "FC", "default"): stored}, {"SST2": data}, [0, 1], setting)
    assert out["fc_long_replay_epochs"] == min(min(int(s), 40) for s in early.stopped_epoch)
    assert 0 <= out["fc_long_replay_diff"] < 1e-5
    changed = SimpleNamespace(**{**vars(stored), "loss": early.loss.copy()})
    changed.loss[3, 1] *= 1.01
    with pytest.raises(VerificationError, match="SST2_FC_default differs from its retraining"):
        sa.fc_long_replay_values({("SST2", "FC", "default"): changed}, {"SST2": data}, [0, 1], setting)
    retrained = SimpleNamespace(**{**vars(changed), "source": "retrained"})  # nothing stored to hold to it
    assert sa.fc_long_replay_values({("SST2", "FC", "default"): retrained}, {"SST2": data}, [0, 1], setting) == \
        {"fc_long_replay_epochs": 0, "fc_long_replay_diff": 0.0}


def _gap_row(setting: str, kind: str, fc: float, tc: float | None) -> dict:
    row = {"setting": setting, "dataset": kind}
    for name, value in (("Attn-FC", fc), ("Attn-TC", tc)):
        row.update({f"{name} (%)": np.nan if value is None else 50 + value, f"{name} std": 0.1,
                    f"{name} − paper": np.nan if value is None else value,
                    f"{name} within": None if value is None else abs(value) <= 2.0})
    return row


def test_fc_gap_values_name_the_settings_that_fit_and_conclude():
    gap = pd.DataFrame([_gap_row("paper", kind, 4.0, 0.1) for kind in ("SST2", "SST5")]
                       + [_gap_row("short", kind, 1.0, 5.0) for kind in ("SST2", "SST5")]
                       + [_gap_row("lr", kind, -1.0, None) for kind in ("SST2", "SST5")])
    out = sa.fc_gap_values(gap)
    assert out["fcgap_fits"] == "*short*, *lr*" and out["fcgap_both"] == "none"
    assert out["fcgap_conclusion"].startswith("So no cheap setting we tried explains the gap")
    assert out["fcgap_conclusion"].endswith("not measured (*lr*), the question stays open.")
    lines = out["fcgap_table"].splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == [
        "setting", "SST2 Attn-FC", "SST2 Attn-TC", "SST5 Attn-FC", "SST5 Attn-TC", "Attn-FC within on every dataset",
        "Attn-TC within on every dataset"]
    lr = next(line for line in lines if line.startswith("| lr"))
    assert "–" in lr and "not measured" in lr and "49.00 (-1.00)" in lr
    fitting = sa.fc_gap_values(pd.DataFrame([_gap_row("short", kind, 1.0, 0.5) for kind in ("SST2", "SST5")]))
    assert fitting["fcgap_both"] == "*short*" and fitting["fcgap_conclusion"].startswith("Such a setting is a candidate")


def _tc_per_seed() -> pd.DataFrame:
    rows = [("SST2", "default", 0, 0.8, 900, 1000, 300.0), ("SST2", "unmasked", 0, 0.499, 40, 140, np.nan),
            ("SST2", "unmasked", 1, 0.5, 42, 142, np.nan), ("SST5", "unmasked", 0, 0.41, 9000, 9100, 800.0),
            ("SST5", "code", 0, 0.40, 5000, 7000, 4000.0), ("SST5", "code", 1, 0.23, 10, 2010, np.nan)]
    return pd.DataFrame([{"dataset": d, "model": "Attn-TC", "variant": v, "seed": s, "test_accuracy": a,
                          "best_epoch": b, "stopped_epoch": e, "left_plateau_epoch": p, "hit_cap": False}
                         for d, v, s, a, b, e, p in rows])


def test_tc_values_tell_which_seeds_left_the_plateau():
    per_seed = _tc_per_seed()
    out = sa.tc_values(per_seed)
    lines = out["tc_text"].splitlines()
    assert len(lines) == len(per_seed)
    assert lines[0] == ("* SST2 Attn-TC (default), seed 0: 80.00 % test accuracy, best epoch 900, stopped at 1000, "
                        "left the plateau at epoch 300.")
    assert lines[1].endswith("never left the initial plateau.")
    assert out["tc_unmasked_text"] == ("SST2: 0 of 2 seeds left the plateau; the others stopped on it after 140, 142 "
                                       "epochs at 49.9 %, 50.0 %; SST5: 1 of 1 seeds left the plateau (at epochs 800, "
                                       "reaching 41.0 %).")
    assert len(out["tc_seed_table"].splitlines()) == 2 + len(per_seed)
    none = sa.tc_values(per_seed.assign(model="Attn-FC"))
    assert none["tc_seed_table"] == "No Attn-TC run is available in this build."
    assert none["tc_unmasked_text"] == "not available in this build."


def test_plateau_and_code_variant_values():
    from attnlib.config import sst_preset

    data = _dataset()
    per_seed = _tc_per_seed()
    out = sa.plateau_values({"SST2": data}, per_seed)
    growth = sa.plateau_growth(data, lr=sst_preset("SST2", "TC", "default").train.lr)
    assert (out["sst2_sigma"], out["sst2_efold"]) == (growth["sigma"], growth["efold"])
    assert out["tc_plateau_efolds"] == f"{300.0 / growth['efold']:.1f}"  # the one SST2 Attn-TC default seed
    assert len(out["plateau_table"].splitlines()) == 2 + 4  # settings: SST2 default, unmasked; SST5 unmasked, code
    assert sa.plateau_values({"SST2": data}, per_seed.iloc[1:])["tc_plateau_efolds"] == "(not available)"
    code = sa.code_variant_values(per_seed)
    scale = sst_preset("SST2", "TC", "default").model.embed_init_std / sst_preset("SST2", "TC", "code").model.embed_init_std
    assert code["code_scale"] == pytest.approx(scale) and code["code_extra_efolds"] == pytest.approx(np.log(scale))
    assert code["tc_code_text"] == ("SST5: best epoch 2505 and stop at 4505 on average, 1 of 2 seeds left the plateau, "
                                    "test accuracy 31.50 %")
    assert sa.code_variant_values(per_seed.iloc[:4])["tc_code_text"].startswith("no `code` Attn-TC run")


def test_padding_values_describe_pad_in_the_unmasked_runs(runs):
    from attnlib.data.transforms import word_purity

    assert sa.unmasked_runs(runs) == [runs[("SST2", "FC", "unmasked")]]
    data = _dataset()
    out = sa.padding_values(runs, data)
    weights = sa.pad_weights(runs)
    assert out["pad_weight_start"] == pytest.approx(weights["PAD weight at epoch 0"].mean())
    assert (out["pad_weight_best_min"], out["pad_weight_best_max"]) == pytest.approx(
        (weights["at the best epoch"].min(), weights["at the best epoch"].max()))
    # $PAD$ is in every padded training sentence, four of each label: purity 0
    assert out["pad_purity"] == pytest.approx(0.0)
    assert word_purity(padded_dataset(data).train)[0][PAD_ID] == len(TRAIN)
    assert (out["sst2_train_prior"], out["sst2_dev_prior"]) == pytest.approx((50.0, 75.0))
    assert len(out["pad_weights_table"].splitlines()) == 2 + 2 and len(out["early_table"].splitlines()) == 2 + 4


def test_dev_trend_values_per_dataset_and_padding(runs):
    import dataclasses

    start, end = sa.DEV_TREND_EPOCHS
    epochs = np.arange(end + 10, dtype=np.float64)[:, None]
    curves = []
    for key, slope in ((("SST2", "FC", "default"), (-3e-6, -2e-6)), (("SST2", "FC", "unmasked"), (1e-6, 2e-6))):
        curves.append(dataclasses.replace(runs[key], dev_loss=(0.69 + np.array(slope) * epochs).astype(np.float32),
                                          stopped_epoch=np.array([end + 5, end + 5])))
    out = sa.dev_trend_values(curves)
    slopes = sa.dev_loss_slopes(curves, start, end)
    assert (out["slope_start"], out["slope_end"]) == (start, end)
    assert out["sst2_masked_direction"] == "falls" and out["sst2_unmasked_direction"] == "rises"
    assert out["sst2_masked_slope_min"] == pytest.approx(-3e-6, rel=0.05)
    assert out["sst2_unmasked_slope_max"] == pytest.approx(2e-6, rel=0.05)
    masked = slopes[slopes.padding == "masked"]["slope / spacing"].abs()
    assert (out["sst2_masked_ratio_min"], out["sst2_masked_ratio_max"]) == (masked.min(), masked.max())
    assert len(out["slopes_table"].splitlines()) == 2 + 4


def test_rounding_stop_values_tell_the_three_ways_a_run_ends():
    spacing = float(np.spacing(np.float32(1.5)))
    t = np.arange(3000, dtype=np.float64)
    plateau = 1.5 - 0.1 * spacing * np.minimum(t, 2800)
    rising = np.where(t <= 2800, 1.5 - 5 * spacing * t, 1.5 - 5 * spacing * 2800 + 2 * spacing * (t - 2800))
    runs = [_curve_run(plateau, 2800, 2900), _curve_run(rising, 2800, 2900), _curve_run(rising, 2800, 2900, cap=2900)]
    out = sa.rounding_stop_values(runs)
    table = sa.rounding_stops(runs)
    assert out["stops_text"].startswith("Of these 3 seeds, 1 stopped that way (SST5 Attn-TC unmasked seed 0)")
    assert "trained to the 10,000-epoch cap" in out["stops_text"]  # the largest cap of the runs
    rise = table[table["stopped by"] == "a rise of the dev loss"]["rise after best (spacings)"].min()
    assert out["stops_text"].endswith(f"stopped on a real rise, at least {rise:.0f} spacings above its best, after "
                                      "falling by at least 5 spacings per epoch.")
    assert (out["rounding_window"], out["rounding_slope"]) == (sa.ROUNDING_WINDOW, sa.ROUNDING_SLOPE)
    none = sa.rounding_stop_values(runs[1:2])
    assert none["stops_text"].startswith("None of these 1 seeds stopped that way. Every other seed")


def test_padding_logit_values_from_the_recomputed_logits(params_runs):
    assert sa.padding_logits(None, None) is None
    missing = sa.padding_logit_values(None)
    assert set(missing) == set(sa.PADDING_LOGIT_NAMES) and len(set(missing.values())) == 1
    run, data, _ = params_runs["unmasked"]
    found = sa.padding_logits(run, data)
    summary = sa.padding_logit_summary(run, data)
    pd.testing.assert_frame_equal(found.summary, summary)
    assert found.model == "Attn-TC" and len(found.sentences) == 2 * len(TRAIN)
    # this tiny run's dev set is its training set: both priors are the training split's
    assert found.priors == pytest.approx({"training prior": 50.0, "dev prior": 50.0})
    out = sa.padding_logit_values(found)
    assert set(out) == set(sa.PADDING_LOGIT_NAMES)
    assert out["padlogit_seeds"] == "0 / 1"
    assert out["padlogit_best"] == " / ".join(str(int(b)) for b in run.best_epoch)
    assert out["padlogit_r_share"] == " / ".join(f"{r:.4f}" for r in summary["r(logit, padding share)"])
    own = summary["PAD's own logit"]
    assert out["padlogit_own"] == f"{own.min():.3f} to {own.max():.3f}"
    below = (summary["mean P(positive) (%)"] < 50.0).all()
    assert out["padlogit_vs_prior"].startswith("still below" if below else "not below")


def test_f5_values_judge_each_setting_and_find_the_turning_words(runs):
    from attnlib.experiments.sst import score_turns

    out = sa.f5_values(runs)
    gaps = pd.concat([r.sen_gaps() for r in runs.values()], ignore_index=True)
    worst = gaps[gaps["rank"] <= sa.F5_TOP].groupby(["variant", "seed"]).rel_gap.median().groupby("variant").max()
    assert out["f5_n_settings"] == 2 and out["f5_n_meets"] == int((worst <= sa.F5_TARGET).sum())
    named = [n for n in out["f5_meets"].split(", ") + out["f5_misses"].split(", ") if n != "none"]
    assert sorted(named) == ["SST2 Attn-FC default", "SST2 Attn-FC unmasked"]
    assert out["f5_fc_worst"] == pytest.approx(worst["default"])
    assert (out["f5_top"], out["f5_target"], out["n_top"], out["f5_turn_drop"]) == (
        sa.F5_TOP, sa.F5_TARGET, sa.N_TOP, sa.TURN_DROP)
    assert (out["f5_turn_words"], out["f5_turn_seeds"]) == ("no word", "none")  # no SST2 Attn-TC default run
    # the words are looked for in the run of the paper's SST2 Attn-TC setting
    as_tc = sa.f5_values({**runs, ("SST2", "TC", "default"): runs[("SST2", "FC", "default")]})
    turns = score_turns(runs[("SST2", "FC", "default")].sen_curves(n_top=sa.F5_GRID_WORDS))
    first = turns[turns.seed == turns.seed.min()] if len(turns) else turns
    assert as_tc["f5_turn_words"] == (" and ".join(f"*{w}*" for w in first.word) or "no word")
    assert as_tc["f5_turn_detail"].count("peaks at epoch") == len(first)


def test_m_choice_values_name_the_padded_m(runs):
    out = sa.m_choice_values(runs, padded_length=PADDED)
    assert (out["padded_length"], out["padded_m"]) == (PADDED, PADDED - 1)
    closer = sa.m_closer(sa.m_choice(runs, top=sa.F5_TOP, padded_length=PADDED))
    assert out["f5_m51_closer"] == (", ".join(closer) or "none of the unmasked runs")
    assert f"m = {PADDED - 1} (padded length)" in out["m_table"]


def test_f6_values_count_the_words_and_settings_meeting_the_criterion():
    rows = []
    for model, passing in (("Attn-FC", (5, 4)), ("Attn-TC", (5, 2))):
        for seed, n in enumerate(passing):
            for i, word in enumerate(sa.F6_WORDS):
                rows.append({"model": model, "variant": "default", "seed": seed, "word": word, "first_epoch": 1,
                             "last_epoch": 500, "purity_first": 0.1, "purity_last": 0.5, "occ_first": 3.0,
                             "occ_last": 1.0, "pass": i < n})
    out = sa.f6_values(pd.DataFrame(rows))
    met = {"Attn-FC": sum(n >= sa.F6_WORDS_NEEDED for n in (5, 4)), "Attn-TC": sum(n >= sa.F6_WORDS_NEEDED for n in (5, 2))}
    assert (out["f6_n_all"], out["f6_n_settings"]) == (sum(n == 2 for n in met.values()), 2)
    assert out["f6_verdict"] == f"Attn-FC default: {met['Attn-FC']} of 2 seeds; Attn-TC default: {met['Attn-TC']} of 2 seeds"
    assert out["f6_table"].splitlines()[0].split("|")[4].strip() == f"words passing (of {len(sa.F6_WORDS)})"
    full = out["f6_full_table"].splitlines()
    assert "meets the criterion" in full[0] and "Π first" in full[0] and len(full) == 2 + len(rows)
    assert (out["f6_rise"], out["f6_words_needed"], out["f6_n_words"]) == (sa.F6_RISE, sa.F6_WORDS_NEEDED, 5)


def test_f7_values_from_the_crossings_and_the_score_peaks(runs):
    from attnlib.experiments.sst import crossings_summary

    shift = [runs[("SST2", "FC", "default")], runs[("SST2", "FC", "unmasked")]]
    out = sa.f7_values(shift)
    crossings = pd.concat([r.f7_crossings() for r in shift], ignore_index=True)
    summary = crossings_summary(crossings)
    assert out["f7_summary"] == summary.to_markdown(index=False)
    header = out["f7_table"].splitlines()[0]
    assert "ahead after step 1" in header and "first crossing (epoch)" in header
    assert ("every crossing (epoch)" in header) == bool((crossings.crossings.map(len) > 1).any())
    short = summary[summary["seeds crossing"] < summary.seeds]
    if short.empty:
        assert out["f7_no_crossing"] == "none"
    else:
        assert out["f7_no_crossing"].count(" seeds; ahead first: ") == len(short)
    peaks = pd.concat([r.f7_score_peaks() for r in shift], ignore_index=True)
    moved = peaks[peaks.last_epoch > 0]
    for word in ("best", "powerful"):
        assert out[f"f7_{word}_n"] == int((moved.word == word).sum())
        assert out[f"f7_{word}_falls"] == int(((moved.word == word) & (moved.fall_after_peak > 0)).sum())
    assert out["f7_best_fall_max"] == f"{moved[moved.word == 'best'].fall_after_peak.max():.3g}"
