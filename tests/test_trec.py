"""TREC question classification: the loader (counts, labels, the 0xF0 byte, the dev split, refused files,
the download from a local server) and the chapter's analyses against independent small computations."""

from __future__ import annotations

import hashlib
import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from attnlib.data import trec
from attnlib.data.trec import CLASSES, TRECDataError, find_data_dir, label_counts, load_trec, read_questions


def _real_dir() -> Path | None:
    try:
        return find_data_dir(download=False)
    except TRECDataError:
        return None


REAL_DIR = _real_dir()
needs_data = pytest.mark.skipif(REAL_DIR is None, reason="TREC files not found (../shared/data/trec, "
                                                          "$ATTNLIB_TREC_DIR or user cache); no download in tests")

TRAIN_COUNTS = {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896}
TEST_COUNTS = {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81, "NUM": 113}
"""Coarse label counts of the two files, as their distribution documents them."""


@pytest.fixture(scope="module")
def data():
    return load_trec(REAL_DIR)


# --------------------------------------------------------------------------- the real files


@needs_data
def test_counts_and_labels_of_the_original_files() -> None:
    train = read_questions(REAL_DIR / "train_5500.label")
    test = read_questions(REAL_DIR / "TREC_10.label")
    assert (len(train), len(test)) == (5452, 500)
    assert label_counts([CLASSES.index(c) for c, _, _ in train]) == TRAIN_COUNTS
    assert label_counts([CLASSES.index(c) for c, _, _ in test]) == TEST_COUNTS


@needs_data
def test_the_0xf0_byte_is_read_as_a_space() -> None:
    raw = (REAL_DIR / "train_5500.label").read_bytes()
    assert raw.count(b"\xf0") == 1 and raw.index(b"\xf0") == 3695
    line = read_questions(REAL_DIR / "train_5500.label")[65]  # line 66
    assert line[2][7:11] == ["a", "sister", "city", "with"]


@needs_data
def test_splits_partition_the_training_file_with_a_fixed_dev_split(data) -> None:
    sizes = {name: len(c) for name, c in data.splits.items()}
    assert sizes == {"train": 5452 - 545, "dev": 545, "test": 500}
    merged = {c: label_counts(data.train.labels)[c] + label_counts(data.splits["dev"].labels)[c] for c in CLASSES}
    assert merged == TRAIN_COUNTS
    assert data.vocab[0] == "$PAD$"
    # the dev split is the same draw every time, and another seed draws another one
    a, b = trec.dev_indices(5452), trec.dev_indices(5452)
    assert np.array_equal(a, b) and len(a) == 545 and len(np.unique(a)) == 545
    assert not np.array_equal(a, trec.dev_indices(5452, seed=1))
    questions = read_questions(REAL_DIR / "train_5500.label")
    dev_words = [" ".join(data.vocab[i] for i in s) for s in data.splits["dev"].sentences]
    expected = [" ".join(trec.tokenize(questions[i][2])) for i in a]
    assert dev_words == expected


@needs_data
def test_tokenised_as_sst(data) -> None:
    """Lowercased, every character that is not a word character or space deleted, split on whitespace."""
    raw = read_questions(REAL_DIR / "TREC_10.label")
    words = [[data.vocab[i] for i in s] for s in data.test.sentences]
    assert words == [re.sub(r"[^\w\s]", "", " ".join(q).lower()).split() for _, _, q in raw]
    assert words[0] == ["how", "far", "is", "it", "from", "denver", "to", "aspen"]


# --------------------------------------------------------------------------- refused files


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "trec"
    folder.mkdir()
    for f in trec.TREC_FILES.values():
        shutil.copyfile(REAL_DIR / f.name, folder / f.name)
    return folder


@needs_data
@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_a_damaged_file_is_refused_with_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    folder = _copy(tmp_path)
    path = folder / "train_5500.label"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else data.replace(b"DESC:", b"ENTY:", 1))
    with pytest.raises(TRECDataError) as info:
        load_trec(folder)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "does not match the pinned copy" in message
    assert ("truncated" in message) == (damage == "truncate")


def test_a_named_folder_without_the_files_is_an_error_naming_it(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(trec.ENV_VAR, str(tmp_path))
    with pytest.raises(TRECDataError, match=f"{tmp_path}.*ATTNLIB_TREC_DIR lacks train_5500.label, TREC_10.label"):
        find_data_dir()


@needs_data
def test_the_verify_data_command_checks_a_trec_folder(tmp_path: Path, capsys) -> None:
    from attnlib import cli

    folder = _copy(tmp_path)
    assert cli.main(["verify-data", "trec", "--data-dir", str(folder), "--no-download"]) == 0
    assert f"TREC data verified in {folder}" in capsys.readouterr().out
    (folder / "TREC_10.label").write_bytes(b"DESC:def What is it ?\n")  # edited: refused, one line naming it
    assert cli.main(["verify-data", "trec", "--data-dir", str(folder), "--no-download"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("attnlib: ") and str(folder / "TREC_10.label") in error
    assert cli.main(["verify-data", "trec", "--data-dir", str(tmp_path / "none")]) == 1
    assert str(tmp_path / "none") in capsys.readouterr().err


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.label"
    path.write_bytes(b"NUM:date When was it ?\nWHAT:x no class here\n")
    with pytest.raises(TRECDataError, match=r"x\.label, line 2: expected 'COARSE:fine question'"):
        read_questions(path)


# --------------------------------------------------------------------------- the download


FAKE = {"train_5500.label": b"NUM:date When did it happen ?\nHUM:ind Who did it ?\nLOC:city Where\xf0is it ?\n",
        "TREC_10.label": b"DESC:def What is it ?\n"}


@pytest.fixture
def fake_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    pins = {split: replace(f, lines=FAKE[f.name].count(b"\n"), bytes=len(FAKE[f.name]),
                           sha256=hashlib.sha256(FAKE[f.name]).hexdigest()) for split, f in trec.TREC_FILES.items()}
    monkeypatch.setattr(trec, "TREC_FILES", pins)


@pytest.fixture
def server() -> Iterator[tuple[str, list[str], dict[str, bytes]]]:
    """A local HTTP server: ``/good/NAME`` serves the fake files, ``/bad/NAME`` an edited copy."""
    requests: list[str] = []
    served = {f"good/{n}": d for n, d in FAKE.items()} | {f"bad/{n}": d.replace(b"it", b"IT") for n, d in FAKE.items()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.strip("/")
            requests.append(name)
            if name not in served:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(served[name])))
            self.end_headers()
            self.wfile.write(served[name])

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", requests, served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    monkeypatch.delenv(trec.ENV_VAR, raising=False)
    monkeypatch.setenv("ATTNLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(trec, "shared_data_dir", lambda: shared)
    return {"shared": shared, "cache": tmp_path / "cache" / "trec"}


def test_download_from_a_local_server_verifies_then_installs(server, places, fake_pins,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url, requests, _ = server
    monkeypatch.setenv(trec.URL_ENV_VAR, url + "bad")
    with pytest.raises(TRECDataError) as info:
        find_data_dir()
    message = str(info.value)
    assert "\n" not in message and "does not match the pinned copy" in message and "nothing was written" in message
    assert not places["cache"].exists() and [p.name for p in places["cache"].parent.iterdir()] == []
    monkeypatch.setenv(trec.URL_ENV_VAR, url + "good")
    assert find_data_dir() == places["cache"]
    assert {p.name: p.read_bytes() for p in places["cache"].iterdir()} == FAKE
    data = load_trec()
    assert {name: len(c) for name, c in data.splits.items()} == {"train": 3, "dev": 0, "test": 1}
    assert data.vocab.count("where") == 1 and "is" in data.vocab  # the 0xF0 byte split "Where" from "is"
    n = len(requests)
    assert find_data_dir() == places["cache"] and len(requests) == n  # served from the cache now


def test_a_missing_file_on_the_server_is_one_line(server, places, fake_pins, monkeypatch: pytest.MonkeyPatch) -> None:
    url, _, _ = server
    monkeypatch.setenv(trec.URL_ENV_VAR, url + "nowhere")
    with pytest.raises(TRECDataError, match="HTTP 404") as info:
        find_data_dir()
    assert "\n" not in str(info.value) and "TREC data not found" in str(info.value)
    with pytest.raises(TRECDataError, match="automatic download is disabled"):
        find_data_dir(download=False)


# --------------------------------------------------------------------------- the analyses, on small hand-made data


from attnlib.config import trec_preset  # noqa: E402
from attnlib.data.corpus import Corpus  # noqa: E402
from attnlib.data.transforms import word_purity  # noqa: E402
from attnlib.experiments import trec_analysis as analysis  # noqa: E402
from attnlib.experiments.sst import EVERY_SENTENCE, SSTRun, attention_shift  # noqa: E402

WORDS = ["$PAD$", "how", "many", "what", "the", "who", "where", "city", "is"]
W = {w: i for i, w in enumerate(WORDS)}
QUESTIONS = [("how many the", 5), ("how many city", 5), ("what the city", 4), ("who is the", 3),
             ("where is the city", 4), ("how the", 1), ("what is", 1)]
"""(question, class) over six classes; "the" is in five questions of four classes, "many" only in NUM (5)."""


def _corpus(rows=QUESTIONS) -> Corpus:
    return Corpus([np.array([W[t] for t in q.split()]) for q, _ in rows], np.array([y for _, y in rows]), len(WORDS))


def test_multiclass_purity_by_hand() -> None:
    occ, purity = word_purity(_corpus(), n_classes=6)
    # "the": 5 questions, classes 5, 4, 3, 4, 1 -> largest share 2/5 -> (6 * 2/5 - 1) / 5
    assert occ[W["the"]] == 5 and purity[W["the"]] == pytest.approx((6 * 2 / 5 - 1) / 5)
    assert purity[W["many"]] == 1.0 and purity[W["who"]] == 1.0
    # "how": classes 5, 5, 1 -> (6 * 2/3 - 1) / 5
    assert purity[W["how"]] == pytest.approx((6 * 2 / 3 - 1) / 5)
    assert np.isnan(purity[W["$PAD$"]])
    # with two classes it is |pos - neg| / (pos + neg)
    two = Corpus(_corpus().sentences, np.array([1, 1, 0, 0, 1, 0, 1]), len(WORDS))
    occ2, purity2 = word_purity(two)
    assert purity2[W["the"]] == pytest.approx(abs(2 - 3) / 5) and purity2[W["many"]] == 1.0


def test_attention_shift_over_every_sentence_by_hand() -> None:
    corpus = _corpus()
    scores = np.zeros((2, len(WORDS)))
    scores[1, W["many"]] = scores[1, W["who"]] = 2.0
    df = attention_shift(corpus, scores, [EVERY_SENTENCE], n_classes=6)
    occ, purity = word_purity(corpus, 6)
    firsts = [W[q.split()[0]] for q, _ in QUESTIONS]  # ties: the first word
    assert df.purity[0] == pytest.approx(np.mean([purity[w] for w in firsts]))
    later = [W["many"], W["many"], W["what"], W["who"], W["where"], W["how"], W["what"]]
    assert df.purity[1] == pytest.approx(np.mean([purity[w] for w in later]))
    assert df.occurrence_unfloored[1] == pytest.approx(np.mean([occ[w] for w in later]) / 1000)


def test_wh_lookup_by_hand() -> None:
    assert analysis.wh_key(["how", "many", "cats"]) == "how many"
    assert analysis.wh_key(["name", "a", "city"]) == "name"
    assert analysis.wh_key(["the", "city", "is"]) == "(none)"
    train = [["how", "many", "x"], ["how", "many", "y"], ["how", "far", "z"], ["who", "is"], ["what", "a"],
             ["what", "b"], ["what", "c"]]
    labels = [5, 5, 5, 3, 2, 2, 1]
    predicted = analysis.wh_lookup(train, labels, [["how", "many"], ["what", "is"], ["why"], ["who"]])
    # "how many" -> 5; "what" -> 2 (2 of 3); "why" unseen -> most common class overall (5: 3 times, 2: 2 times)
    assert predicted.tolist() == [5, 2, 5, 3]


def _run(scores: np.ndarray, norms: np.ndarray, best: list[int], epochs: np.ndarray, best_scores: np.ndarray,
         words: np.ndarray | None = None) -> SSTRun:
    """A TREC run with hand-made traces (R, S, W) over ``words`` (default: every word)."""
    R, S, _ = scores.shape
    words = np.arange(len(WORDS)) if words is None else words
    return SSTRun(kind="TREC", head="FC", variant="default", config=trec_preset("FC"), seeds=list(range(S)),
                  loss=np.zeros((int(epochs[-1]) + 1, S)), dev_loss=np.zeros((int(epochs[-1]) + 1, S)),
                  record_epochs=epochs, test_accuracy_curve=np.zeros((R, S)), words=words,
                  word_names=[WORDS[i] for i in words], m_w=np.zeros(len(words)), scores=scores, norms=norms,
                  top=np.zeros((S, 1), dtype=np.int64), final_test_accuracy=np.zeros(S),
                  stopped_epoch=np.full(S, int(epochs[-1])), best_epoch=np.asarray(best), query_norm=np.ones(S),
                  shift=pd.DataFrame(), f7_weights=np.zeros((0, 0, 0)), best_scores=best_scores)


import pandas as pd  # noqa: E402


def test_stage_tops_from_kept_words_and_best_scores() -> None:
    corpus = _corpus()
    epochs = np.array([0, 1, 100])
    kept = np.array([W["how"], W["many"], W["the"], W["who"], W["where"], W["what"]])
    scores = np.zeros((3, 1, len(kept)))
    scores[1, 0] = [0.1, 0.0, 0.3, 0.0, 0.0, 0.0]  # step 1: "the" leads
    best = np.zeros((1, len(WORDS)))
    best[0, W["many"]], best[0, W["city"]], best[0, W["the"]] = 3.0, 1.0, -1.0
    run = _run(scores, np.zeros_like(scores), [100], epochs, best, words=kept)
    tops = analysis.stage_tops(run, corpus, WORDS, {"first step": 1, "best epoch": -1}, 6)
    first = tops[tops.stage == "first step"].word.tolist()
    # independent: per question, the word with the largest score, unkept words at -inf, first position on ties
    full = {w: -np.inf for w in WORDS}
    full.update({WORDS[w]: s for w, s in zip(kept, scores[1, 0])})
    assert first == [max(q.split(), key=lambda t: (full[t], -q.split().index(t))) for q, _ in QUESTIONS]
    assert tops[tops.stage == "best epoch"].word.tolist() == ["many", "many", "city", "who", "city", "how", "what"]
    summary = analysis.stage_summary(tops)
    occ, purity = word_purity(corpus, 6)
    row = summary[summary.stage == "best epoch"].iloc[0]
    picks = [W[w] for w in ["many", "many", "city", "who", "city", "how", "what"]]
    assert row["mean purity of the most-attended word"] == pytest.approx(np.mean(purity[picks]))
    assert row["distinct most-attended words"] == 5 and row["most common"].startswith("city (29 %), many (29 %)")
    per_class = analysis.top_words_per_class(tops, ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"])
    assert per_class.set_index("class").loc["NUM"].iloc[-1].startswith("many (100 %, 1.00)")


def test_score_norm_against_the_identity_by_hand() -> None:
    corpus = _corpus()
    epochs = np.array([0, 100, 200])
    scores = np.zeros((3, 1, len(WORDS)))
    norms = np.full((3, 1, len(WORDS)), 0.01)
    scores[1, 0, W["the"]], norms[1, 0, W["the"]] = -0.5, 0.4  # falls, norm grows
    scores[1, 0, W["many"]], norms[1, 0, W["many"]] = 1.0, 1.5  # rises
    run = _run(scores, norms, [100], epochs, np.zeros((1, len(WORDS))))
    table = analysis.score_norm_table(run, corpus, 6, min_occurrence=2).set_index("word")
    assert set(table.index) == {"how", "many", "what", "the", "city", "is"}  # in >= 2 questions
    m_many = np.mean([3, 3]) - 1  # "many" is in two questions of 3 words
    expected = np.sqrt(2 * (1.0 + (np.e - 1) / m_many))
    assert table.loc["many", "theory"] == pytest.approx(expected)
    assert table.loc["many", "rel_gap"] == pytest.approx(abs(1.5 - expected) / expected)
    assert table.loc["the", "theory"] == 0 and np.isnan(table.loc["the", "rel_gap"])
    assert table.loc["the", "direction"] == "falls" and table.loc["many", "direction"] == "rises"
    summary = analysis.score_norm_summary(table.reset_index()).set_index("score")
    # "the" alone falls, and its |q||v| grew; "many" and the four words whose score stayed at 0 count as rising,
    # and only "many" has a gap (the identity gives 0 at score 0)
    assert summary.loc["falls", "word-seed pairs"] == 1 and summary.loc["falls", "share whose |q||v| grew (%)"] == 100
    assert summary.loc["rises", "word-seed pairs"] == 5
    assert summary.loc["rises", "median relative gap to the identity"] == pytest.approx(abs(1.5 - expected) / expected)


def test_rise_and_fall_by_hand() -> None:
    corpus = _corpus()
    epochs = np.array([0, 100, 200, 300])
    scores = np.zeros((4, 1, len(WORDS)))
    scores[:, 0, W["how"]] = [0, 1.0, 0.6, 0.3]  # peak 1.0 at 100, 0.3 < 0.5 at the best epoch
    scores[:, 0, W["many"]] = [0, 0.5, 1.0, 2.0]  # rises throughout
    scores[:, 0, W["the"]] = [0, 0.1, 0.0, -0.2]  # a peak below PEAK_MIN is no rise
    run = _run(scores, np.zeros_like(scores), [300], epochs, np.zeros((1, len(WORDS))))
    table = analysis.rise_and_fall(run, corpus, 6, min_occurrence=2).set_index("word")
    assert table.loc["how", "rises then falls"] and table.loc["how", "peak epoch"] == 100
    assert not table.loc["many", "rises then falls"] and not table.loc["the", "rises then falls"]
    # up to the best epoch only: with the best epoch at 100, "how" has not fallen yet
    run.best_epoch = np.array([100])
    assert not analysis.rise_and_fall(run, corpus, 6, min_occurrence=2).set_index("word").loc["how", "rises then falls"]


# --------------------------------------------------------------------------- stored runs


@needs_data
@pytest.mark.parametrize("head", ["FC", "TC", "TL"])
def test_a_stored_trec_run_is_served_only_after_its_checks(tmp_path: Path, head: str) -> None:
    from attnlib.experiments import trec as experiment
    from attnlib.experiments.sst.storage import StoredRunError, load_run, save_run
    from attnlib.experiments.sst.training import train_setting
    from attnlib.experiments.sst.verification import verify_run

    config = trec_preset(head).replace(train={"epochs": 40, "record_every": 20})
    dataset = experiment.trec_dataset()
    run = train_setting("TREC", head, "default", (0, 1), config=config, dataset=dataset)
    assert run.shift.word_id.iloc[0] == EVERY_SENTENCE and len(run.words) > 100  # the frequent words are kept
    save_run(run, tmp_path)
    loaded = load_run("TREC", head, "default", tmp_path, config=config)
    np.testing.assert_array_equal(loaded.final_test_accuracy, run.final_test_accuracy)
    report = verify_run(loaded, dataset, replay=False)
    assert report["ok"], report["failed"]
    assert report["checks"]["recompute"]["status"] == ("not available" if head == "TL" else "passed")
    with pytest.raises(StoredRunError, match="config hash"):
        load_run("TREC", head, "default", tmp_path)  # the preset's 100,000-epoch cap is another configuration
    npz = tmp_path / f"TREC_{head}_default.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    with pytest.raises(StoredRunError, match=f"{npz}.*does not have the sha256") as info:
        load_run("TREC", head, "default", tmp_path, config=config)
    assert "\n" not in str(info.value)


@needs_data
def test_attnlib_run_trec_writes_tables_figures_checks_and_metrics(tmp_path: Path, capsys) -> None:
    """``attnlib run trec --seeds 1 --out DIR``: the stored runs of the three heads served (seed 0) after their
    checks, and the common outputs written."""
    import json

    from attnlib.cli import main

    assert main(["run", "trec", "--seeds", "1", "--quiet", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "trec"
    written = {p.name for p in folder.iterdir()}
    assert {"metrics.json", "checks.csv"} <= written
    assert any(name.endswith(".png") for name in written) and any(name.endswith(".csv") and name != "checks.csv"
                                                                   for name in written)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["seeds"] == [0] and metrics["provenance"]["config_hashes"]
    checks = (folder / "checks.csv").read_text(encoding="utf-8")
    assert all(f"X{k}" in checks for k in (1, 2, 3, 4))


@needs_data
def test_the_store_command_verifies_the_stored_trec_runs(tmp_path: Path, capsys) -> None:
    from attnlib import cli
    from attnlib.experiments import trec as experiment

    folder = experiment.store_folder()
    stored = sorted(p.stem for p in folder.glob("TREC_*.npz"))
    assert stored, f"no stored TREC run in {folder}"
    assert cli.main(["store", "verify", "--store-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{len(stored)} of {len(stored)} stored runs" in out
    assert all(f"{name}: integrity: passed" in out for name in stored)
    assert cli.main(["store", "verify", "--store-dir", str(tmp_path)]) == 1  # nothing checked is no pass
    assert "no stored run to verify" in capsys.readouterr().err
