"""Verifying stored SST runs, and comparing a fresh retraining with the store.

Loading a stored run already checks its files against the manifest's sha256 and that the arrays are
the named setting's (:mod:`attnlib.experiments.sst.storage`). :func:`verify_stored` adds checks that
need the run's content or the data, each reported as passed, failed or why it did not run:

* ``data``: the stored words are the dataset's (vocabulary ids map to the stored word names, the
  dataset fingerprint is the one trained on, the class count and vocabulary size fit);
* ``patience``: the early-stopping rule applied to the stored dev-loss curve gives the stored best and
  stopping epochs of every seed;
* ``replay``: the first :data:`VERIFY_EPOCHS` epochs of every seed, retrained, give the stored training
  and dev loss curves;
* ``recompute``: (runs stored with the scores and classifier-projected embeddings at the best epoch)
  the train/dev/test loss and accuracy recomputed from those arrays are the stored ones;
* ``f5``: F5's inputs recomputed: each word's m_w from the training sentences, and the top words as the
  ranking of the stored scores (:func:`f5_check`; the norms cannot be, see there).

``attnlib store manifest|verify|compare`` (:mod:`attnlib.cli`) regenerates the manifest, verifies a store, or
compares a freshly retrained store with it (:func:`compare_stores`; the scheduled retraining job's check).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from attnlib.cache import cached_train
from attnlib.data.sst import SSTDataNotFound
from attnlib.data.transforms import PAD_ID, load_unpadded, mean_length_minus_one
from attnlib.experiments.sst.settings import SETTINGS
from attnlib.experiments.sst.storage import StoredRunError, load_run, projected_width
from attnlib.experiments.sst.training import sst_dataset

VERIFY_EPOCHS = 200
"""Epochs of every seed a stored run's training and dev loss curves are replayed over."""
LOSS_RTOL = 1e-4
"""Relative tolerance of a replayed or recomputed loss: float32 sums in another order (another thread
count) differ in the 6th-7th digit, a changed run in far more."""
MARGIN = 1e-5
"""A sentence whose two largest recomputed logits are closer than this times the largest |E U| entry may be
classified either way by float32 rounding (the engine's logits are sums of such entries, rounded to about
1e-7 of their size); only such sentences may account for a different recomputed accuracy."""
EPOCH_TOLERANCE = 5
"""A retrained run may stop this many epochs from the stored one: near the flat minimum of the dev loss,
float32 rounding (which depends on the number of CPU threads) decides between nearly equal values."""
ACCURACY_TOLERANCE = 0.001
"""A retrained run's test accuracy may differ from the stored one by 0.1 point."""
TIE_RTOL = 1e-6
"""Two epochs whose dev losses differ by less than this (relative) are tied within float32 rounding: a mean
over the ~1,000 dev sentences carries about 1e-7 of relative rounding, and a sum in another order moves
it by a few times that. When each run's dev loss at the other's best epoch is tied with its own best, the
two runs picked different epochs of the same flat minimum (an 8,000-epoch Attn-FC run can differ by tens
of epochs that way), so they pass on the epochs whatever the distance; test accuracy is still held to
:data:`ACCURACY_TOLERANCE`."""


class VerificationError(StoredRunError):
    """A stored run whose content does not hold up to :func:`verify_stored`."""


NO_DATA = "no SST data found"
"""Why the checks that need the SST files did not run (where was looked is said once, by the caller)."""


def _check(ok: bool | None, detail: str) -> dict:
    return {"status": "not run" if ok is None else ("passed" if ok else "failed"), "detail": detail}


def patience_check(run) -> dict:
    """Apply the early-stopping rule (strict improvement of the dev loss; stop ``patience`` epochs after
    the best; the epoch cap otherwise) to each seed's stored dev-loss curve, compare with the stored epochs."""
    patience, cap = run.config.train.patience, run.config.train.epochs
    if patience is None:
        return _check(None, "no early stopping in this setting")
    bad = []
    for k, seed in enumerate(run.seeds):
        curve = np.asarray(run.dev_loss[:, k], dtype=np.float32)
        best_loss, best, stop = np.float32(np.inf), 0, cap
        for t in range(min(len(curve), cap + 1)):
            if not np.isfinite(curve[t]):
                bad.append(f"seed {seed}: dev loss missing at epoch {t}")
                break
            if curve[t] < best_loss:
                best_loss, best = curve[t], t
            if t - best >= patience:
                stop = t
                break
        if (best, stop) != (int(run.best_epoch[k]), int(run.stopped_epoch[k])):
            bad.append(f"seed {seed}: the curve gives best {best}, stop {stop}; stored {int(run.best_epoch[k])}, "
                       f"{int(run.stopped_epoch[k])}")
        elif np.isfinite(run.dev_loss[stop + 1:, k]).any():
            bad.append(f"seed {seed}: dev loss recorded after the stopping epoch {stop}")
    return _check(not bad, "; ".join(bad) or f"best and stopping epochs of {len(run.seeds)} seeds follow from "
                                              f"their dev-loss curves (patience {patience})")


def data_check(run, dataset) -> dict:
    """The stored words, class count and vocabulary size are the dataset's."""
    vocab = dataset.vocab
    problems = []
    if int(np.max(run.words)) >= len(vocab):
        problems.append(f"word id {int(np.max(run.words))} outside the vocabulary of {len(vocab)}")
    elif [vocab[i] for i in run.words] != list(run.word_names):
        problems.append("stored word ids name other words in this dataset's vocabulary")
    stored = run.provenance.get("dataset_fingerprint")
    if stored is not None and stored != dataset.fingerprint():
        problems.append(f"trained on dataset {stored}, this one is {dataset.fingerprint()}")
    width = projected_width(run.config, dataset.n_classes)
    if run.best_projected.size and run.best_projected.shape[1:] != (len(vocab), width):
        problems.append(f"projected embeddings of shape {run.best_projected.shape[1:]}, expected {len(vocab)} words "
                        f"by {width} columns")
    return _check(not problems, "; ".join(problems) or f"{len(run.words)} stored words, vocabulary of {len(vocab)} "
                                                       f"and {dataset.n_classes} classes match the dataset")


def trajectory_check(run, result, rtol: float = LOSS_RTOL) -> dict:
    """Compare a fresh training of the stored run's setting (``result``: the same seeds, any epoch cap, with or
    without early stopping, which never changes an epoch before the stop) with the stored training and dev
    loss per epoch, over every epoch both cover up to each seed's stored stop."""
    worst, compared = 0.0, []
    for k in range(len(run.seeds)):
        n = min(len(result.loss) - 1, int(run.stopped_epoch[k])) + 1
        compared.append(n)
        for fresh, stored in ((result.loss, run.loss), (result.dev_loss, run.dev_loss)):
            if fresh is None or stored is None:
                continue
            worst = max(worst, float(np.max(np.abs(fresh[:n, k] - stored[:n, k]) / np.abs(stored[:n, k]))))
    losses = "training and dev loss" if result.dev_loss is not None else "training loss"
    check = _check(worst <= rtol, f"first {min(compared) - 1} epochs of all {len(run.seeds)} seeds replayed: "
                                  f"{losses} within {worst:.1e} relative (tolerance {rtol:.0e})")
    return {**check, "epochs_compared": min(compared), "max_rel_diff": worst}


def replay_check(run, dataset, epochs: int = VERIFY_EPOCHS, rtol: float = LOSS_RTOL) -> dict:
    """Retrain the first ``epochs`` epochs of every seed and compare the training and dev loss per epoch
    (:func:`trajectory_check`). The retraining goes through the result cache, whose entry is bit-identical to
    training again (its key holds the config, seeds, data, engine and torch): a chapter and the scorecard that
    verify the same stored run train its replay once."""
    short = run.config.replace(train={"epochs": epochs})
    result = cached_train(short.model, short.train, [dataset] * len(run.seeds), list(run.seeds), quiet=True)
    return trajectory_check(run, result, rtol)


def require_trajectory(run, result, rtol: float = LOSS_RTOL) -> dict:
    """:func:`trajectory_check`, raising :class:`VerificationError` (one line) when it fails."""
    check = trajectory_check(run, result, rtol)
    if check["status"] != "passed":
        raise VerificationError(f"stored run {run.key} differs from its retraining: {check['detail']}")
    return check


def split_logits(corpus, scores: np.ndarray, projected: np.ndarray) -> np.ndarray:
    """Logits (n, K) of one seed on a split, in float64, from its word scores (V,) and projected embeddings
    (V, K): each sentence's logits are the attention-weighted mean of its words' rows of E U."""
    counts = corpus.counts
    scores = scores.astype(np.float64)
    weights = np.exp(scores - scores.max())
    return (counts @ (weights[:, None] * projected.astype(np.float64))) / (counts @ weights)[:, None]


def split_metrics(corpus, scores: np.ndarray, projected: np.ndarray) -> tuple[float, float, int]:
    """(loss, accuracy, sentences within :data:`MARGIN` of a tie) of one seed on a split, from its word
    scores (V,) and projected embeddings (V, K), through :func:`split_logits`."""
    logits = split_logits(corpus, scores, projected)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    labels = corpus.labels
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    top2 = np.sort(logits, axis=1)[:, -2:]
    return loss, accuracy, int(np.sum(top2[:, 1] - top2[:, 0] < MARGIN * np.abs(projected).max()))


def recompute_check(run, dataset, rtol: float = LOSS_RTOL) -> dict:
    """Recompute every seed's losses and accuracies at the best epoch from the stored scores and projected
    embeddings; compare with the stored values (the curves at the best epoch, the reported test accuracy)."""
    if not run.best_scores.size:
        return {"status": "not available", "detail": "stored before this format: no scores and projected "
                                                     "embeddings at the best epoch"}
    if run.config.model.head == "TL":
        return {"status": "not available", "detail": "Attn-TL's head is not linear after the pooling: the stored "
                                                     "scores and E U1 do not give its logits"}
    bad = []
    for k, seed in enumerate(run.seeds):
        b = int(run.best_epoch[k])
        reported = {"train_loss": run.loss[b, k], "dev_loss": run.dev_loss[b, k],
                    "test_accuracy": run.final_test_accuracy[k],
                    **{name: run.at_best[name][k] for name in ("train_accuracy", "dev_accuracy", "test_loss")}}
        for split in ("train", "dev", "test"):
            corpus = dataset.splits[split]
            loss, accuracy, near_ties = split_metrics(corpus, run.best_scores[k], run.best_projected[k])
            stored_loss, stored_acc = float(reported[f"{split}_loss"]), float(reported[f"{split}_accuracy"])
            if not abs(loss - stored_loss) <= rtol * abs(stored_loss):
                bad.append(f"seed {seed} {split} loss: recomputed {loss:.6g}, stored {stored_loss:.6g}")
            # counts of correct sentences; 0.01 absorbs a float32-stored accuracy's rounding (< 1e-3 sentence)
            if not abs(accuracy - stored_acc) * len(corpus) <= near_ties + 0.01:
                bad.append(f"seed {seed} {split} accuracy: recomputed {accuracy:.6g}, stored {stored_acc:.6g}")
    return _check(not bad, "; ".join(bad) or f"train, dev and test loss and accuracy of {len(run.seeds)} seeds "
                                              "recomputed from stored embeddings")


F16_RTOL = 2.0 ** -10
"""Relative spacing of float16, in which the stored snapshot scores are kept: two scores closer than this
(relative) may have swapped places when they were rounded."""


def f5_check(run, dataset) -> dict:
    """F5's inputs recomputed: every traced word's m_w from the training sentences, and each seed's top words
    (``top``) as the ranking of the stored scores at its last snapshot (ties within float16 rounding allowed).

    The norms |q||v_w| cannot be recomputed: the stored parameters at the best epoch are the scores and E U,
    which do not determine an embedding's norm."""
    problems = []
    m_w = mean_length_minus_one(load_unpadded(dataset).train)[np.asarray(run.words)]
    if not np.allclose(m_w, run.m_w, rtol=1e-6, equal_nan=True):
        problems.append(f"m_w of {int((~np.isclose(m_w, run.m_w, rtol=1e-6, equal_nan=True)).sum())} words differ "
                        "from the training sentences'")
    pos = {int(w): i for i, w in enumerate(run.words)}
    for k, seed in enumerate(run.seeds):
        last = run.scores[run.last_index(k), k].astype(np.float64)
        top = [pos.get(int(w)) for w in run.top[k]]
        if None in top:
            problems.append(f"seed {seed}: a top word is not among the traced words")
            continue
        ranked = last[top]
        slack = F16_RTOL * np.maximum(np.abs(ranked[:-1]), np.abs(ranked[1:])) + 1e-7
        rest = np.setdiff1d(np.arange(len(run.words)), top)
        if run.config.data.mask_padding:
            rest = rest[np.asarray(run.words)[rest] != PAD_ID]
        floor = ranked.min() * (1 + np.sign(ranked.min()) * F16_RTOL) + 1e-7
        if np.any(np.diff(ranked) > slack) or (rest.size and last[rest].max() > floor):
            problems.append(f"seed {seed}: the stored top words are not the ranking of the stored scores at "
                            f"epoch {int(run.record_epochs[run.last_index(k)])}")
    return _check(not problems, "; ".join(problems) or f"m_w of {len(run.words)} words and the top "
                                                       f"{run.top.shape[1]} words of {len(run.seeds)} seeds recomputed")


def verify_run(run, dataset=None, epochs: int = VERIFY_EPOCHS, rtol: float = LOSS_RTOL, replay: bool = True,
               download: bool = False) -> dict:
    """The checks above on a run loaded by :func:`~attnlib.experiments.sst.storage.load_run` (which made the
    integrity and identity checks: loading is the first check).

    ``replay=False`` skips the replay (the slow part: minutes for Attn-TC). The data checks need the
    SST files; when there are none (no folder named, none found, and ``download`` false) they are reported
    as not run, while a named folder that lacks a file or a file that does not match its pin raises that
    :class:`~attnlib.data.SSTDataError`. ``ok`` is False as soon as one check failed; a check that did not
    run or is not available counts neither way.
    """
    checks = {"integrity": _check(True, "sha256 of the npz and the sidecar match the manifest; kind, head, variant, "
                                        "config hash and seeds in the file match the setting"),
              "patience": patience_check(run)}
    try:
        dataset = dataset or sst_dataset(run.config, download=download)
    except SSTDataNotFound:
        checks.update(data=_check(None, NO_DATA), recompute=_check(None, NO_DATA), f5=_check(None, NO_DATA),
                      replay=_check(None, NO_DATA if replay else "replay off"))
    else:
        checks["data"] = data_check(run, dataset)
        checks["recompute"] = recompute_check(run, dataset, rtol)
        checks["f5"] = f5_check(run, dataset)
        checks["replay"] = replay_check(run, dataset, epochs, rtol) if replay else _check(None, "replay off")
    failed = [f"{name}: {c['detail']}" for name, c in checks.items() if c["status"] == "failed"]
    return {"setting": run.key, "format": run.store_format, "checks": checks, "ok": not failed,
            "failed": failed, "epochs_compared": checks["replay"].get("epochs_compared", 0),
            "max_rel_diff": checks["replay"].get("max_rel_diff", float("nan"))}


def verify_stored(kind: str, head: str, variant: str, folder: str | Path | None = None,
                  epochs: int = VERIFY_EPOCHS, rtol: float = LOSS_RTOL, replay: bool = True, dataset=None,
                  download: bool = False) -> dict:
    """Load a stored run (sha256 and identity, raising :class:`StoredRunError`) and :func:`verify_run` it."""
    return verify_run(load_run(kind, head, variant, folder), dataset, epochs, rtol, replay, download)


def describe(report: dict) -> str:
    """One sentence: which checks passed, which did not run or are not available (and why), which failed;
    checks with the same status and reason are named together."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, c in report["checks"].items():
        groups.setdefault((c["status"], "" if c["status"] == "passed" else c["detail"]), []).append(name)
    return "; ".join(f"{', '.join(names)} {status}" + (f" ({detail})" if detail else "")
                     for (status, detail), names in groups.items())


def require_verified(report: dict) -> dict:
    """``report`` if every check that ran passed; else :class:`VerificationError` naming the first failure."""
    if not report["ok"]:
        raise VerificationError(f"stored run {report['setting']} failed verification: {report['failed'][0]}")
    return report


def reports_table(reports: Sequence[dict]) -> pd.DataFrame:
    """One row per :func:`verify_stored` report: the setting, each check's status, the replay's largest
    relative loss difference."""
    return pd.DataFrame([{"setting": r["setting"], **{name: c["status"] for name, c in r["checks"].items()},
                          "replay max rel. diff": r["max_rel_diff"]} for r in reports])


def reports_markdown(reports: Sequence[dict]) -> str:
    """:func:`reports_table` as a Markdown table."""
    table = reports_table(reports)
    if table.empty:
        return ""
    cell = lambda v: f"{v:.1e}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- retraining against the store


def compare_runs(stored, fresh, epochs_within: int = EPOCH_TOLERANCE,
                 accuracy_within: float = ACCURACY_TOLERANCE) -> pd.DataFrame:
    """Per seed of both runs: stopping and best epochs within ``epochs_within`` or best epochs tied within
    :data:`TIE_RTOL` on both dev-loss curves, and test accuracy within ``accuracy_within`` (a fraction:
    0.001 is 0.1 point); ``pass`` when the epochs and the accuracy hold."""
    rows = []
    for seed in sorted(set(stored.seeds) & set(fresh.seeds)):
        a, b = list(stored.seeds).index(seed), list(fresh.seeds).index(seed)
        row = {"setting": stored.key, "seed": seed,
               "stored_stopped": int(stored.stopped_epoch[a]), "fresh_stopped": int(fresh.stopped_epoch[b]),
               "stored_best": int(stored.best_epoch[a]), "fresh_best": int(fresh.best_epoch[b]),
               "stored_test_accuracy": float(stored.final_test_accuracy[a]),
               "fresh_test_accuracy": float(fresh.final_test_accuracy[b])}
        near = (abs(row["stored_stopped"] - row["fresh_stopped"]) <= epochs_within
                and abs(row["stored_best"] - row["fresh_best"]) <= epochs_within)
        row["tied_best"] = bool(_tied(stored.dev_loss[:, a], row["stored_best"], row["fresh_best"])
                                and _tied(fresh.dev_loss[:, b], row["fresh_best"], row["stored_best"]))
        row["pass"] = bool((near or (row["tied_best"] and _same_rule(stored, fresh, a, b)))
                           and abs(row["stored_test_accuracy"] - row["fresh_test_accuracy"]) <= accuracy_within)
        rows.append(row)
    if not rows or set(stored.seeds) != set(fresh.seeds):
        rows.append({"setting": stored.key, "seed": None, "pass": False})
    return pd.DataFrame(rows)


def require_same(stored, fresh, **tolerances) -> pd.DataFrame:
    """:func:`compare_runs`, raising :class:`VerificationError` (one line: the setting, the seed, the numbers and the
    tolerances) when a retrained run differs from its stored one beyond the tolerances; else the comparison."""
    table = compare_runs(stored, fresh, **tolerances)
    drift = table[~table["pass"]]
    if len(drift):
        r = drift.iloc[0]
        what = ("other seeds" if pd.isna(r.seed) else
                f"seed {int(r.seed)}: stopped {r.stored_stopped} vs {r.fresh_stopped}, best {r.stored_best} vs "
                f"{r.fresh_best}, test accuracy {r.stored_test_accuracy:.4f} vs {r.fresh_test_accuracy:.4f}")
        raise VerificationError(
            f"{stored.key} retrained differs from its stored run ({what}; stored vs retrained) beyond the tolerances "
            f"(epochs within {tolerances.get('epochs_within', EPOCH_TOLERANCE)} or best epochs tied within "
            f"{TIE_RTOL:g} of the dev loss, test accuracy within "
            f"{100 * tolerances.get('accuracy_within', ACCURACY_TOLERANCE):.1f} point)")
    return table


def _tied(dev_loss: np.ndarray, best: int, other: int) -> bool:
    """The curve's dev loss at ``other`` is within :data:`TIE_RTOL` of its value at its own ``best`` epoch."""
    if not (0 <= other < len(dev_loss)) or not np.isfinite(dev_loss[other]):
        return False
    return bool(abs(float(dev_loss[other]) - float(dev_loss[best])) <= TIE_RTOL * abs(float(dev_loss[best])))


def _same_rule(stored, fresh, a: int, b: int) -> bool:
    """Each run stopped where its own best epoch and the patience rule put it (the gap is then only the tie)."""
    patience = stored.config.train.patience
    if patience is None:
        return True
    return all(int(run.stopped_epoch[k]) - int(run.best_epoch[k]) == patience
               for run, k in ((stored, a), (fresh, b)))


def compare_stores(fresh_folder: str | Path, folder: str | Path | None = None,
                   settings: Sequence[tuple[str, str, str]] | None = None, **tolerances) -> pd.DataFrame:
    """:func:`compare_runs` for every setting stored in ``fresh_folder`` (or ``settings``) against the store."""
    fresh_folder = Path(fresh_folder)
    if settings is None:
        settings = [s for s in SETTINGS if (fresh_folder / f"{'_'.join(s)}.npz").is_file()]
    if not settings:
        raise StoredRunError(f"no retrained runs to compare in {fresh_folder}")
    return pd.concat([compare_runs(load_run(*s, folder), load_run(*s, fresh_folder), **tolerances)
                      for s in settings], ignore_index=True)
