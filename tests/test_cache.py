"""The on-disk result cache: hits are bit-identical to training, keys change with every input, writes
are atomic (a failed or killed write leaves the previous entry or none), corrupt entries are recomputed
with one line on stderr, and ``attnlib cache clear`` removes entries and nothing else."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import attnlib
from attnlib import cache
from attnlib.cli import main
from attnlib.config import ModelConfig, RunConfig, SyntheticDataConfig, TrainConfig
from attnlib.data import Corpus, Dataset, generate_synthetic
from attnlib.experiments import EXPERIMENTS
from attnlib.train import TrainResult, train

DATA = SyntheticDataConfig(n_nontopic=40, n_train=24, n_test=8, m=6)
MODEL = ModelConfig(head="TC")
TRAIN = TrainConfig(epochs=15)


@pytest.fixture(autouse=True)
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets an empty cache of its own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ATTNLIB_CACHE_DIR", str(folder))
    monkeypatch.delenv("ATTNLIB_CACHE", raising=False)
    return folder


def datasets(seeds: list[int] = [0, 1]) -> list[Dataset]:  # noqa: B006 - never mutated
    return [generate_synthetic(DATA, seed) for seed in seeds]


def with_dev(dataset: Dataset) -> Dataset:
    """``dataset`` with its test split doubling as a dev split, for early stopping."""
    return dataclasses.replace(dataset, splits={**dataset.splits, "dev": dataset.splits["test"]})


def assert_identical(a: TrainResult, b: TrainResult) -> None:
    """Every recorded array equal bit for bit (NaN where NaN) and of the same dtype; configs and seeds equal."""
    assert (a.model, a.train_config, a.seeds) == (b.model, b.train_config, b.seeds)
    for name in cache.ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), name


def counting_train(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the cache's ``train`` by one that counts its calls."""
    calls: list[int] = []

    def counted(*args, **kwargs):
        calls.append(1)
        return train(*args, **kwargs)

    monkeypatch.setattr(cache, "train", counted)
    return calls


@pytest.mark.parametrize("model, config, dev", [
    (ModelConfig(head="FC"), TrainConfig(epochs=15), False),  # span-reduced embeddings
    (ModelConfig(head="TC"), TrainConfig(epochs=15, dtype="float32", record_every=4), False),
    (ModelConfig(head="TL", train_query=True), TrainConfig(epochs=30, patience=3), True),  # dev_loss stored
])
def test_hit_is_bit_identical_to_training(model, config, dev, monkeypatch, cache_folder) -> None:
    data = [with_dev(d) for d in datasets()] if dev else datasets()
    words = data[0].topic_words
    direct = train(model, config, data, [0, 1], trace_words=words, quiet=True)
    calls = counting_train(monkeypatch)
    miss = cache.cached_train(model, config, data, [0, 1], trace_words=words, quiet=True)
    hit = cache.cached_train(model, config, data, [0, 1], trace_words=words, quiet=True)
    assert len(calls) == 1 and len(cache.entries(cache_folder)) == 1
    assert_identical(direct, miss)
    assert_identical(direct, hit)
    assert (hit.dev_loss is not None) == dev and hit.params is None


def test_key_changes_with_every_input(monkeypatch) -> None:
    data = datasets()
    words = data[0].topic_words
    key = lambda **changes: cache.cache_key(**{  # noqa: E731
        "model": MODEL, "config": TRAIN, "datasets": data, "seeds": [0, 1], "trace_words": words, **changes})
    reference = key()
    assert key() == reference == cache.cache_key(MODEL, TRAIN, datasets(), [0, 1], words)  # deterministic
    variants = {
        "lr": key(config=dataclasses.replace(TRAIN, lr=0.05)),
        "epochs": key(config=dataclasses.replace(TRAIN, epochs=16)),
        "head": key(model=dataclasses.replace(MODEL, head="TL")),
        "d_embed": key(model=dataclasses.replace(MODEL, d_embed=11)),
        "seeds": key(seeds=[0, 2]),
        "seed order": key(seeds=[1, 0], datasets=data[::-1]),
        "data": key(datasets=[data[0], generate_synthetic(DATA, 5)]),
        "trace words": key(trace_words=words[:2]),
        "reduce_embeddings": key(reduce_embeddings=False),
    }
    monkeypatch.setattr(cache, "__version__", attnlib.__version__ + ".post1")
    variants["version"] = key()
    assert reference not in variants.values()
    assert len(set(variants.values())) == len(variants)


def test_n_classes_and_vocabulary_size_are_part_of_the_key() -> None:
    """Same token ids and labels (same fingerprint), but a different parameter shape: another key."""
    data = datasets([0])[0]
    bigger = Dataset(data.name, data.vocab + ["extra"], data.n_classes,
                     {name: Corpus(c.sentences, c.labels, c.vocab_size + 1) for name, c in data.splits.items()},
                     data.topic_of_word)
    more_classes = dataclasses.replace(data, n_classes=data.n_classes + 1)
    assert bigger.fingerprint() == data.fingerprint() == more_classes.fingerprint()
    keys = {cache.cache_key(MODEL, TRAIN, [d], [0]) for d in (data, bigger, more_classes)}
    assert len(keys) == 3


def test_a_new_version_misses(monkeypatch) -> None:
    calls = counting_train(monkeypatch)
    cache.cached_train(MODEL, TRAIN, datasets(), [0, 1], quiet=True)
    monkeypatch.setattr(cache, "__version__", attnlib.__version__ + ".post1")
    cache.cached_train(MODEL, TRAIN, datasets(), [0, 1], quiet=True)
    assert len(calls) == 2 and len(cache.entries()) == 2


def test_keep_params_and_cache_off_bypass_the_cache(monkeypatch, cache_folder) -> None:
    calls = counting_train(monkeypatch)
    kept = cache.cached_train(MODEL, TRAIN, datasets(), [0, 1], quiet=True, keep_params=True)
    assert kept.params is not None and not cache.entries(cache_folder)
    with cache.disabled():
        assert not cache.enabled()
        cache.cached_train(MODEL, TRAIN, datasets(), [0, 1], quiet=True)
    assert cache.enabled() and "ATTNLIB_CACHE" not in os.environ
    monkeypatch.setenv("ATTNLIB_CACHE", "off")
    cache.cached_train(MODEL, TRAIN, datasets(), [0, 1], quiet=True)
    assert len(calls) == 3 and not cache.entries(cache_folder)


def test_location_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("ATTNLIB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "attnlib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "attnlib"


def test_experiments_are_served_from_the_cache(monkeypatch, cache_folder) -> None:
    base = RunConfig(data=DATA, train=TRAIN)
    first = EXPERIMENTS["synthetic"].run(config=base, seeds=[0, 1], heads=("FC", "TL"), quiet=True)
    calls = counting_train(monkeypatch)
    again = EXPERIMENTS["synthetic"].run(config=base, seeds=[0, 1], heads=("FC", "TL"), quiet=True)
    assert not calls and len(cache.entries(cache_folder)) == 2
    for name in first.runs:
        assert_identical(first.runs[name], again.runs[name])
    assert first.summary().equals(again.summary())


# --------------------------------------------------------------------------- atomic writes


def stored(seeds: list[int] = [0, 1]) -> tuple[str, Path, TrainResult]:  # noqa: B006 - never mutated
    """Train once through the cache; the entry's key, path and the result."""
    data = datasets(seeds)
    result = cache.cached_train(MODEL, TRAIN, data, seeds, quiet=True)
    key = cache.cache_key(MODEL, TRAIN, data, seeds)
    return key, cache.entry_path(key), result


def test_a_failed_rename_keeps_the_previous_entry(monkeypatch, cache_folder) -> None:
    key, path, result = stored()
    before = path.read_bytes()
    other = dataclasses.replace(result, loss=result.loss + 1.0)

    def crash(src, dst):
        raise OSError("simulated crash between writing and renaming")

    monkeypatch.setattr(cache.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        cache.save_entry(path, key, other)
    assert path.read_bytes() == before
    assert_identical(cache.load_entry(path, key), result)
    assert sorted(cache_folder.iterdir()) == sorted([path, cache.lock_path(path)])  # the temporary file is gone


def one_notice(capsys) -> str:
    """The one ``attnlib:`` line the cache wrote on stderr (and nothing on stdout)."""
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("attnlib: "), err
    return lines[0]


def test_a_failed_write_warns_and_still_returns_the_result(monkeypatch, cache_folder, capsys) -> None:
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.np, "savez", full_disk)
    result = cache.cached_train(MODEL, TRAIN, datasets(), [0, 1], quiet=True)
    assert "could not write" in one_notice(capsys)
    assert_identical(result, train(MODEL, TRAIN, datasets(), [0, 1], quiet=True))
    assert {p.suffix for p in cache_folder.iterdir()} <= {cache.LOCK_SUFFIX}  # no entry, no temporary file


WRITER = """
import sys
from attnlib import cache
from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig
from attnlib.data import generate_synthetic

data = SyntheticDataConfig(**{data})
model, config = ModelConfig(**{model}), TrainConfig(**{train})
work = []
for seeds in ([0, 1], [2]):
    datasets = [generate_synthetic(data, s) for s in seeds]
    key = cache.cache_key(model, config, datasets, seeds)
    work.append((cache.entry_path(key), key, cache.train(model, config, datasets, seeds, quiet=True)))
while True:  # rewrite both entries until killed
    for path, key, result in work:
        cache.save_entry(path, key, result)
"""


def test_a_writer_killed_at_any_moment_leaves_a_loadable_cache(cache_folder, capsys) -> None:
    """SIGKILL a process that rewrites two entries in a loop: every entry left loads, leftovers are only
    temporary files, and training through the cache afterwards hits cleanly (no warning)."""
    source = WRITER.format(data=dataclasses.asdict(DATA), model=dataclasses.asdict(MODEL),
                           train=dataclasses.asdict(TRAIN))
    for delay in (0.0, 0.3):
        writer = subprocess.Popen([sys.executable, "-c", source], env=os.environ.copy())
        try:
            deadline = time.monotonic() + 60
            while not cache.entries(cache_folder) and writer.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(delay)
            assert writer.poll() is None, "the writer stopped by itself"
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        for path in cache.entries(cache_folder):
            cache.load_entry(path, path.stem[len(cache.PREFIX):])
        others = set(cache_folder.iterdir()) - set(cache.entries(cache_folder))
        assert all(p.name.startswith(f".{cache.PREFIX}") and p.suffix in (cache.TEMP_SUFFIX, cache.LOCK_SUFFIX)
                   for p in others)
    capsys.readouterr()
    for seeds in ([0, 1], [2]):
        data = datasets(seeds)
        assert_identical(cache.cached_train(MODEL, TRAIN, data, seeds, quiet=True),
                         train(MODEL, TRAIN, data, seeds, quiet=True))
    assert capsys.readouterr().err == ""


WAITER = """
import json, sys
import attnlib.cache as cache
from attnlib.config import ModelConfig, SyntheticDataConfig, TrainConfig
from attnlib.data import generate_synthetic

trained = []
plain_train = cache.train
cache.train = lambda *args, **kwargs: trained.append(1) or plain_train(*args, **kwargs)
data = [generate_synthetic(SyntheticDataConfig(**{data}), seed) for seed in (0, 1)]
cache.cached_train(ModelConfig(**{model}), TrainConfig(**{train}), data, [0, 1], quiet=True)
print(json.dumps({{"trained": len(trained)}}))
"""


@pytest.mark.skipif(cache.fcntl is None, reason="no advisory file locks on this platform")
def test_a_second_process_waits_for_an_entry_being_trained_and_reads_it(cache_folder) -> None:
    """While this process holds an entry's lock (as it does while training it), a second process asking
    for the same entry waits; once the entry is written and the lock released, it reads the entry and
    trains nothing: parallel notebooks or sweep workers never train one entry twice."""
    data = datasets([0, 1])
    key = cache.cache_key(MODEL, TRAIN, data, [0, 1])
    path = cache.entry_path(key)
    source = WAITER.format(data=dataclasses.asdict(DATA), model=dataclasses.asdict(MODEL),
                           train=dataclasses.asdict(TRAIN))
    with cache.entry_lock(path):
        waiter = subprocess.Popen([sys.executable, "-c", source], env=os.environ.copy(), stdout=subprocess.PIPE,
                                  text=True)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiter.wait(timeout=3)  # blocked on the lock (importing and generating take well under that)
            cache.save_entry(path, key, train(MODEL, TRAIN, data, [0, 1], quiet=True))
        except BaseException:
            waiter.kill()
            raise
    out, _ = waiter.communicate(timeout=120)
    assert waiter.returncode == 0 and json.loads(out) == {"trained": 0}


# --------------------------------------------------------------------------- corrupt entries


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"not a cache entry")


def flip_a_byte(path: Path) -> None:
    """Change one byte inside the stored loss values (the zip layer of np.savez keeps no checksum we rely on)."""
    data = bytearray(path.read_bytes())
    with np.load(path, allow_pickle=False) as z:
        needle = np.ascontiguousarray(z["loss"]).tobytes()[:16]
    at = data.find(needle)
    assert at >= 0
    data[at + 3] ^= 0xFF
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def rewrite_loss(path: Path) -> None:
    """A well-formed archive whose loss no longer matches the checksum in its header."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["loss"] = arrays["loss"] * 2
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("damage", [truncate, garbage, flip_a_byte, empty, rewrite_loss])
def test_a_corrupt_entry_is_recomputed_with_a_warning(damage, monkeypatch, capsys) -> None:
    key, path, result = stored()
    damage(path)
    with pytest.raises(cache.CorruptEntry):
        cache.load_entry(path, key)
    calls = counting_train(monkeypatch)
    again = cache.cached_train(MODEL, TRAIN, datasets(), [0, 1], quiet=True)
    assert str(path) in one_notice(capsys)
    assert len(calls) == 1
    assert_identical(again, result)
    assert_identical(cache.load_entry(path, key), result)  # overwritten with a good entry


def test_an_entry_under_another_name_is_not_served(capsys) -> None:
    key, path, _ = stored([0, 1])
    other_key, other_path, other = stored([2])
    other_path.write_bytes(path.read_bytes())
    served = cache.cached_train(MODEL, TRAIN, datasets([2]), [2], quiet=True)
    assert "another key" in one_notice(capsys)
    assert_identical(served, other)


# --------------------------------------------------------------------------- the command line


def test_cache_info_and_clear(capsys, cache_folder) -> None:
    stored([0, 1])
    stored([2])
    leftover = cache_folder / f".{cache.PREFIX}deadbeef.abc{cache.TEMP_SUFFIX}"
    leftover.write_bytes(b"partial")
    unrelated = [cache_folder / "notes.txt", cache_folder / "sst" / "train.txt"]
    for path in unrelated:
        path.parent.mkdir(exist_ok=True)
        path.write_text("keep me")
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(cache_folder) in out and re.search(r"entries:\s+2\b", out)
    entries = cache.entries(cache_folder)
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    for path in entries + [leftover]:
        assert f"removed {path}" in out and not path.exists()
    assert str(cache_folder) in out.splitlines()[-1]
    assert all(path.read_text() == "keep me" for path in unrelated)
    assert main(["cache", "info"]) == 0 and re.search(r"entries:\s+0\b", capsys.readouterr().out)


def test_no_cache_flag_turns_the_cache_off_for_the_run(monkeypatch, tmp_path) -> None:
    from attnlib import cli

    seen = []

    def fake_run(name, args) -> None:
        seen.append((cache.enabled(), args.base))

    monkeypatch.setattr(cli, "_run_experiment", fake_run)
    assert main(["run", "synthetic", "--no-cache", "--out", str(tmp_path)]) == 0
    assert main(["run", "synthetic", "--out", str(tmp_path)]) == 0
    assert seen == [(False, None), (True, None)] and cache.enabled()
