"""SST loading (the Stanford Sentiment Treebank as the paper uses it, SST2 and SST5): parser, tokeniser, checksums, error messages and the published statistics."""

from __future__ import annotations

import io
import shutil
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from attnlib.data import sst
from attnlib.data.corpus import Dataset
from attnlib.data.sst import (PAD, SST_FILES, SST_URL, TRAIN_VARIANT_SHA256, SSTDataError, find_data_dir,
                              load_sst, parse_tree, read_trees, sentences_text, tokenize, verify_files)

F7_SENTENCE = "a powerful sequel and one of the best films of the year"


def _real_dir() -> Path | None:
    """The pinned SST folder if it can be found without downloading."""
    try:
        return find_data_dir(download=False)
    except SSTDataError:
        return None


REAL_DIR = _real_dir()
needs_data = pytest.mark.skipif(
    REAL_DIR is None, reason="SST files not found (../shared/data/sst, $ATTNLIB_DATA_DIR or user cache); no download in tests"
)


@pytest.fixture(scope="module")
def sst2() -> Dataset:
    return load_sst("SST2", REAL_DIR)


@pytest.fixture(scope="module")
def sst5() -> Dataset:
    return load_sst("SST5", REAL_DIR)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point every searched place (env var, shared folder, user cache) at empty temporary folders."""
    places = {name: tmp_path / name for name in ("env", "shared", "cache")}
    for path in places.values():
        path.mkdir()
    monkeypatch.setenv(sst.ENV_VAR, str(places["env"]))
    monkeypatch.setattr(sst, "shared_data_dir", lambda: places["shared"])
    monkeypatch.setattr(sst, "cache_data_dir", lambda: places["cache"])
    return places


def _copy_real(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in SST_FILES.values():
        shutil.copyfile(REAL_DIR / f.name, dest / f.name)
    return dest


# --------------------------------------------------------------------------- parser


def test_parse_nested_tree() -> None:
    line = "(3 (2 It) (4 (4 (2 's) (4 (3 (2 a) (4 (3 lovely) (2 film))))) (2 .)))\n"
    assert parse_tree(line) == (3, ["It", "'s", "a", "lovely", "film", "."])


def test_parse_single_leaf_and_unary_root() -> None:
    assert parse_tree("(4 Wonderful)") == (4, ["Wonderful"])
    assert parse_tree("(1 (1 Bad))") == (1, ["Bad"])


def test_parse_keeps_no_break_space_and_escapes() -> None:
    line = "(2 (2 (2 8\u00a01\\/2) (2 -LRB-)) (2 (2 writer\\/director) (2 (2 \\*) (2 -RRB-))))"
    root, leaves = parse_tree(line)
    assert root == 2
    assert leaves == ["8\u00a01\\/2", "-LRB-", "writer\\/director", "\\*", "-RRB-"]


def test_parse_accented_letters() -> None:
    assert parse_tree("(3 (2 Café) (3 señor))")[1] == ["Café", "señor"]


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("", "expected '('"),
        ("(3 (2 a) (2 b)", "expected ' (' or ')'"),
        ("(3 (2 a) (2 b)))", "unexpected text after the tree"),
        ("(3 (2 a)(2 b))", "expected ' (' or ')'"),
        ("(x (2 a))", "expected a label"),
        ("(7 (2 a))", "label 7 outside 0..4"),
        ("(2 (2 a b))", "contains a space"),
        ("(2 (2 a(b)))", "not closed by ')'"),
        ("(2 (2 ))", "empty leaf token"),
        ("2 a", "expected '('"),
    ],
)
def test_parse_malformed(line: str, fragment: str) -> None:
    with pytest.raises(SSTDataError) as info:
        parse_tree(line)
    assert fragment in str(info.value)


def test_read_trees_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("(3 (2 a) (3 good))\n(1 (2 a) (1 bad)\n", encoding="utf-8")
    with pytest.raises(SSTDataError) as info:
        read_trees(path)
    assert f"{path}, line 2" in str(info.value)


# --------------------------------------------------------------------------- tokeniser


@pytest.mark.parametrize(
    "leaves, expected",
    [
        (["wo", "n't"], ["wo", "nt"]),
        (["-LRB-", "sic", "-RRB-"], ["lrb", "sic", "rrb"]),
        (["It", "'s"], ["it", "s"]),
        (["re-imagining"], ["reimagining"]),
        (["writer\\/director"], ["writerdirector"]),
        (["8\u00a01\\/2"], ["8", "12"]),
        (["Café", ",", "SEÑOR", "!"], ["café", "señor"]),
        (["a", "--", "b"], ["a", "b"]),
    ],
)
def test_tokenize_spec_examples(leaves: list[str], expected: list[str]) -> None:
    assert tokenize(leaves) == expected


def test_tokenize_keep_punctuation() -> None:
    assert tokenize(["Wo", "n't", "!"], keep_punctuation=True) == ["wo", "n't", "!"]


def test_tokenize_empty_sentence_is_an_error() -> None:
    with pytest.raises(SSTDataError, match=r"'\. \.\.\.' has no tokens"):
        tokenize([".", "..."])


# --------------------------------------------------------------------------- real data statistics


@needs_data
def test_split_sizes_and_classes(sst2: Dataset, sst5: Dataset) -> None:
    assert (sst2.name, sst2.n_classes, sst5.name, sst5.n_classes) == ("SST2", 2, "SST5", 5)
    assert {k: len(v) for k, v in sst5.splits.items()} == {"train": 8544, "dev": 1101, "test": 2210}
    assert {k: len(v) for k, v in sst2.splits.items()} == {"train": 6920, "dev": 872, "test": 1821}


@needs_data
def test_vocabulary(sst2: Dataset, sst5: Dataset) -> None:
    for data, size in ((sst2, 17440), (sst5, 19376)):
        assert len(data.vocab) == size
        assert data.vocab[0] == PAD
        assert data.vocab[1:] == sorted(set(data.vocab[1:]))
        assert all(c.vocab_size == size for c in data.splits.values())
    used = set(np.concatenate([np.concatenate(c.sentences) for c in sst5.splits.values()]).tolist())
    assert used == set(range(1, len(sst5.vocab)))  # every word occurs, $PAD$ never does


@needs_data
def test_lengths(sst2: Dataset, sst5: Dataset) -> None:
    for data, mean in ((sst2, 17.16), (sst5, 17.02)):
        assert max(int(c.lengths.max()) for c in data.splits.values()) == 52
        assert min(int(c.lengths.min()) for c in data.splits.values()) == 1
        assert round(float(data.train.lengths.mean()), 2) == mean


@needs_data
def test_label_counts(sst2: Dataset, sst5: Dataset) -> None:
    assert np.bincount(sst5.train.labels).tolist() == [1092, 2218, 1624, 2322, 1288]
    assert np.bincount(sst5.splits["dev"].labels).tolist() == [139, 289, 229, 279, 165]
    assert np.bincount(sst5.test.labels).tolist() == [279, 633, 389, 510, 399]
    assert np.bincount(sst2.train.labels).tolist() == [3310, 3610]


@needs_data
def test_sst2_is_sst5_without_neutral_binarised(sst2: Dataset, sst5: Dataset) -> None:
    for split in ("train", "dev", "test"):
        keep = sst5.splits[split].labels != 2
        text5 = [s for s, k in zip(sentences_text(sst5, split), keep) if k]
        assert sentences_text(sst2, split) == text5
        mapped = np.array([0, 0, -1, 1, 1])[sst5.splits[split].labels[keep]]
        assert sst2.splits[split].labels.tolist() == mapped.tolist()


@needs_data
def test_f7_sentence(sst2: Dataset) -> None:
    text = [" ".join(s) for s in sentences_text(sst2, "train")]
    assert [i for i, s in enumerate(text) if s == F7_SENTENCE] == [2846]
    assert sst2.train.labels[2846] == 1


@needs_data
def test_no_break_space_leaves() -> None:
    lines = (REAL_DIR / "train.txt").read_text(encoding="utf-8").split("\n")
    found = {}
    for number in (4342, 5799, 7409):
        leaves = parse_tree(lines[number - 1])[1]
        found[number] = [leaf for leaf in leaves if "\u00a0" in leaf]
    assert found == {4342: ["8\u00a01\\/2"], 5799: ["2\u00a01\\/2"], 7409: ["2\u00a01\\/2"]}
    assert tokenize(found[4342]) == ["8", "12"]
    assert sum("\u00a0" in line for line in lines) == 3


@needs_data
def test_load_is_cached(sst2: Dataset) -> None:
    assert load_sst("SST2", REAL_DIR) is sst2


@needs_data
def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        load_sst("SST3", REAL_DIR)


# --------------------------------------------------------------------------- checksums and errors


@needs_data
def test_real_files_verify() -> None:
    verify_files(REAL_DIR)


@needs_data
def test_truncated_train_is_rejected(tmp_path: Path) -> None:
    data = _copy_real(tmp_path / "sst")
    train = data / "train.txt"
    lines = train.read_bytes().split(b"\n")
    train.write_bytes(b"\n".join(lines[:5000]) + b"\n")
    with pytest.raises(SSTDataError) as info:
        load_sst("SST5", data, download=False)
    message = str(info.value)
    assert "train.txt" in message and SST_FILES["train"].sha256 in message
    assert "5000 lines" in message and "truncated" in message


@needs_data
def test_corrupt_byte_is_rejected(tmp_path: Path) -> None:
    data = _copy_real(tmp_path / "sst")
    raw = bytearray((data / "test.txt").read_bytes())
    raw[100] = ord("X") if raw[100] != ord("X") else ord("Y")
    (data / "test.txt").write_bytes(bytes(raw))
    with pytest.raises(SSTDataError, match="test.txt.*expected sha256 " + SST_FILES["test"].sha256):
        verify_files(data)


@needs_data
def test_9645_line_variant_message(tmp_path: Path) -> None:
    data = _copy_real(tmp_path / "sst")
    with open(data / "train.txt", "ab") as out:
        out.write((data / "dev.txt").read_bytes())
    with pytest.raises(SSTDataError) as info:
        verify_files(data)
    message = str(info.value)
    assert TRAIN_VARIANT_SHA256 in message and SST_FILES["train"].sha256 in message
    assert "9645-line variant" in message and "keep its first 8544 lines" in message


def test_missing_everywhere_offline_message(isolated: dict[str, Path], tmp_path: Path) -> None:
    explicit = tmp_path / "explicit"
    explicit.mkdir()

    def offline(dest: Path) -> None:
        raise urllib.error.URLError("no network")

    with pytest.raises(SSTDataError) as info:
        find_data_dir(explicit, downloader=offline)
    message = str(info.value)
    for path in (explicit, *isolated.values()):
        assert str(path) in message
    assert SST_URL in message and "no network" in message
    for f in SST_FILES.values():
        assert f.member in message and f.sha256 in message
    assert not list(isolated["cache"].iterdir())


def test_download_disabled(isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(dest: Path) -> None:
        raise AssertionError("must not download")

    monkeypatch.setattr(sst, "download_sst", forbidden)
    monkeypatch.delenv(sst.ENV_VAR)
    with pytest.raises(SSTDataError, match="download is disabled") as info:
        find_data_dir(download=False)
    assert f"${sst.ENV_VAR}: (not set)" in str(info.value)


def test_default_download_is_module_function(isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def failing(dest: Path) -> None:
        calls.append(dest)
        raise OSError("offline")

    monkeypatch.setattr(sst, "download_sst", failing)
    with pytest.raises(SSTDataError, match="offline"):
        find_data_dir()
    assert calls == [isolated["cache"]]


@needs_data
def test_env_var_resolution(isolated: dict[str, Path]) -> None:
    _copy_real(isolated["env"])
    assert find_data_dir(download=False) == isolated["env"]
    _copy_real(isolated["shared"])
    assert find_data_dir(download=False) == isolated["env"]  # env var beats the shared folder


@needs_data
def test_argument_beats_env_var_and_partial_folders_are_skipped(isolated: dict[str, Path], tmp_path: Path) -> None:
    _copy_real(isolated["env"])
    explicit = _copy_real(tmp_path / "explicit")
    assert find_data_dir(explicit, download=False) == explicit
    (explicit / "dev.txt").unlink()
    assert find_data_dir(explicit, download=False) == isolated["env"]
    _copy_real(isolated["shared"])
    (isolated["env"] / "test.txt").unlink()
    assert find_data_dir(explicit, download=False) == isolated["shared"]


@needs_data
def test_injected_downloader_fills_cache(isolated: dict[str, Path]) -> None:
    assert find_data_dir(downloader=_copy_real) == isolated["cache"]
    assert load_sst("SST5", download=False).fingerprint() == load_sst("SST5", REAL_DIR).fingerprint()


@needs_data
def test_download_sst_extracts_members_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for f in SST_FILES.values():
            zf.writestr(f.member, (REAL_DIR / f.name).read_bytes())
    payload = buffer.getvalue()

    class FakeResponse(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    seen: list[tuple[str, float]] = []

    def fake_urlopen(url: str, timeout: float) -> FakeResponse:
        seen.append((url, timeout))
        return FakeResponse(payload)

    monkeypatch.setattr(sst.urllib.request, "urlopen", fake_urlopen)
    dest = tmp_path / "cache" / "sst"
    sst.download_sst(dest)
    verify_files(dest)
    assert seen == [(SST_URL, sst.DOWNLOAD_TIMEOUT_S)]
    assert SST_URL in capsys.readouterr().err
    assert sorted(p.name for p in dest.iterdir()) == ["dev.txt", "test.txt", "train.txt"]


@needs_data
def test_label_out_of_range_names_line(tmp_path: Path) -> None:
    data = _copy_real(tmp_path / "sst")
    lines = (data / "dev.txt").read_text(encoding="utf-8").split("\n")
    lines[9] = "(5" + lines[9][2:]
    (data / "dev.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(SSTDataError, match=r"dev.txt, line 10: label 5 outside 0..4"):
        read_trees(data / "dev.txt")

