"""Configuration: one frozen dataclass per concern, validated on construction, plus named presets.

Every choice the paper and the authors' code leave open, or make differently, is a field here (the
default stated where it is defined, the other reading as an option), so an experiment is fully
described by a :class:`RunConfig` and its hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADS: dict[str, str] = {"FC": "Attn-FC", "TC": "Attn-TC", "TL": "Attn-TL"}
"""Classifier heads by short code, with the paper's model names."""

PARAMETER_GROUPS = ("embeddings", "keys", "query", "head")
"""Groups of trainable parameters that can be frozen by configuration."""

FC_INITS = ("randn_unit_diag", "orthonormal", "onehot")
DTYPES = ("float32", "float64")


def _require(ok: bool, field_name: str, allowed: str, value: Any) -> None:
    """Raise a ValueError naming the field, the allowed range and the offending value."""
    if not ok:
        raise ValueError(f"{field_name} must be {allowed} (got {value!r})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SyntheticDataConfig:
    """The topic-word generator of the paper's synthetic experiments: K topics, topic words per topic,
    m non-topic words per sentence."""

    n_topics: int = 4
    words_per_topic: int = 2
    n_nontopic: int = 5000
    m: int = 20
    n_train: int = 800
    n_test: int = 200
    m_range: tuple[int, int] | None = None
    """Variable-m mode (to test the identity when sentence lengths vary): per-sentence m drawn uniformly
    from [lo, hi]; None means fixed m."""

    def __post_init__(self) -> None:
        _require(_is_int(self.n_topics) and self.n_topics >= 2, "SyntheticDataConfig.n_topics", "an integer >= 2", self.n_topics)
        _require(_is_int(self.words_per_topic) and self.words_per_topic >= 1,
                 "SyntheticDataConfig.words_per_topic", "an integer >= 1", self.words_per_topic)
        _require(_is_int(self.n_nontopic) and self.n_nontopic >= self.n_topics,
                 "SyntheticDataConfig.n_nontopic", f"an integer >= n_topics ({self.n_topics})", self.n_nontopic)
        _require(_is_int(self.m) and self.m >= 1, "SyntheticDataConfig.m", "an integer >= 1", self.m)
        _require(_is_int(self.n_train) and self.n_train >= 1, "SyntheticDataConfig.n_train", "an integer >= 1", self.n_train)
        _require(_is_int(self.n_test) and self.n_test >= 1, "SyntheticDataConfig.n_test", "an integer >= 1", self.n_test)
        if self.m_range is not None:
            lo_hi = tuple(self.m_range)
            _require(len(lo_hi) == 2 and all(_is_int(x) for x in lo_hi) and 1 <= lo_hi[0] <= lo_hi[1],
                     "SyntheticDataConfig.m_range", "None or a pair (lo, hi) of integers with 1 <= lo <= hi", self.m_range)
            object.__setattr__(self, "m_range", lo_hi)

    @property
    def vocab_size(self) -> int:
        return self.n_topics * self.words_per_topic + self.n_nontopic


SST_KINDS = ("SST2", "SST5")


@dataclass(frozen=True)
class SSTDataConfig:
    """The Stanford Sentiment Treebank as the paper uses it: which task, padding, tokenisation."""

    kind: str = "SST2"
    mask_padding: bool = True
    """True: padding is masked (weight 0), as the paper sets the padding symbol's score to -inf. False: the
    authors' code's behaviour, `$PAD$` is an ordinary trainable word and every sentence is padded to the
    longest length."""
    keep_punctuation: bool = False
    m: int | None = None
    """m in the identity for F5; None uses each word's own m_w = mean length of its sentences - 1."""

    def __post_init__(self) -> None:
        _require(self.kind in SST_KINDS, "SSTDataConfig.kind", f"one of {list(SST_KINDS)}", self.kind)
        _require(isinstance(self.mask_padding, bool), "SSTDataConfig.mask_padding", "True or False", self.mask_padding)
        _require(isinstance(self.keep_punctuation, bool), "SSTDataConfig.keep_punctuation", "True or False",
                 self.keep_punctuation)
        _require(self.m is None or (_is_int(self.m) and self.m >= 1), "SSTDataConfig.m", "None or an integer >= 1",
                 self.m)


@dataclass(frozen=True)
class TRECDataConfig:
    """TREC question classification (Li & Roth 2002), coarse classes: tokenisation and the carved dev split."""

    keep_punctuation: bool = False
    dev_fraction: float = 0.1
    """Share of the training file held out as the dev split (TREC has none)."""
    split_seed: int = 0
    """Seed of the dev split's draw, the same for every head and training seed."""
    m: int | None = None
    """m in the identity for the score-norm relation; None uses each word's own mean sentence length - 1."""
    mask_padding = True  # not a field: questions are never padded, as in SST's masked (paper) setting
    kind = "TREC"  # not a field: the name the runs and the stored files of this data set go by

    def __post_init__(self) -> None:
        _require(isinstance(self.keep_punctuation, bool), "TRECDataConfig.keep_punctuation", "True or False",
                 self.keep_punctuation)
        _require(_is_real(self.dev_fraction) and 0 < self.dev_fraction < 1, "TRECDataConfig.dev_fraction",
                 "a number in (0, 1)", self.dev_fraction)
        _require(_is_int(self.split_seed) and self.split_seed >= 0, "TRECDataConfig.split_seed",
                 "an integer >= 0", self.split_seed)
        _require(self.m is None or (_is_int(self.m) and self.m >= 1), "TRECDataConfig.m", "None or an integer >= 1",
                 self.m)


@dataclass(frozen=True)
class ModelConfig:
    """The attention classifier of the paper: dimensions, initialisation and which head."""

    head: str = "FC"
    d_embed: int = 10
    d_key: int = 10
    query_std: float = 0.3
    train_query: bool = False
    embed_init_std: float = 1e-3
    key_init_std: float = 0.0
    hidden_units: int = 10
    fc_init: str = "randn_unit_diag"
    reduce_keys: bool = True
    """Carry the keys as one score per word where that is exact (fixed query, keys starting at 0)."""

    def __post_init__(self) -> None:
        _require(self.head in HEADS, "ModelConfig.head", f"one of {sorted(HEADS)}", self.head)
        _require(_is_int(self.d_embed) and self.d_embed >= 1, "ModelConfig.d_embed", "an integer >= 1", self.d_embed)
        _require(_is_int(self.d_key) and self.d_key >= 1, "ModelConfig.d_key", "an integer >= 1", self.d_key)
        _require(_is_real(self.query_std) and self.query_std > 0, "ModelConfig.query_std", "a finite number > 0", self.query_std)
        _require(isinstance(self.train_query, bool), "ModelConfig.train_query", "True or False", self.train_query)
        _require(_is_real(self.embed_init_std) and self.embed_init_std >= 0,
                 "ModelConfig.embed_init_std", "a finite number >= 0", self.embed_init_std)
        _require(_is_real(self.key_init_std) and self.key_init_std >= 0,
                 "ModelConfig.key_init_std", "a finite number >= 0", self.key_init_std)
        _require(_is_int(self.hidden_units) and self.hidden_units >= 1,
                 "ModelConfig.hidden_units", "an integer >= 1", self.hidden_units)
        _require(isinstance(self.reduce_keys, bool), "ModelConfig.reduce_keys", "True or False", self.reduce_keys)
        _require(self.fc_init in FC_INITS, "ModelConfig.fc_init", f"one of {list(FC_INITS)}", self.fc_init)

    @property
    def name(self) -> str:
        """The paper's model name, e.g. ``Attn-FC``."""
        return HEADS[self.head]


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch gradient descent, as the paper trains: learning rate, epochs, precision, frozen groups, early stopping."""

    lr: float = 0.1
    epochs: int = 5000
    dtype: str = "float64"
    freeze: tuple[str, ...] = ()
    patience: int | None = None
    """Early stopping on the dev loss after this many epochs without improvement; None trains all epochs."""
    record_every: int = 1
    """Traced words are recorded every this many epochs (and at the first and last epoch)."""

    def __post_init__(self) -> None:
        _require(_is_real(self.lr) and self.lr > 0, "TrainConfig.lr", "a finite number > 0", self.lr)
        _require(_is_int(self.epochs) and self.epochs >= 1, "TrainConfig.epochs", "an integer >= 1", self.epochs)
        _require(self.dtype in DTYPES, "TrainConfig.dtype", f"one of {list(DTYPES)}", self.dtype)
        freeze = tuple(self.freeze)
        _require(all(g in PARAMETER_GROUPS for g in freeze), "TrainConfig.freeze",
                 f"a subset of {list(PARAMETER_GROUPS)}", self.freeze)
        object.__setattr__(self, "freeze", tuple(sorted(set(freeze))))
        _require(self.patience is None or (_is_int(self.patience) and self.patience >= 1),
                 "TrainConfig.patience", "None or an integer >= 1", self.patience)
        _require(_is_int(self.record_every) and self.record_every >= 1,
                 "TrainConfig.record_every", "an integer >= 1", self.record_every)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one synthetic training run, apart from the seeds."""

    data: SyntheticDataConfig | SSTDataConfig | TRECDataConfig = field(default_factory=SyntheticDataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with fields of the parts changed, e.g. ``replace(model={"head": "TC"})``."""
        parts = {name: getattr(self, name) for name in ("data", "model", "train")}
        for name, fields in changes.items():
            _require(name in parts, "RunConfig.replace", f"one of {list(parts)}", name)
            parts[name] = dataclasses.replace(parts[name], **fields)
        return RunConfig(**parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """A short stable hash of the configuration (used to key stored results)."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], base: RunConfig | None = None) -> RunConfig:
        """``base`` (default: the defaults) with the fields named in ``mapping`` changed, e.g.
        ``{"train": {"lr": 0.05}, "model": {"d_embed": 20}}``.

        Unknown keys are refused with the allowed ones, values of the wrong type with the field, the
        expected type and the value; the values are then validated as on construction.
        """
        base = base or cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(f"a config must be a table with keys data, model, train (got {mapping!r})")
        parts = {}
        for section, fields in mapping.items():
            if section not in ("data", "model", "train"):
                raise ValueError(f"unknown config key {section!r}; allowed keys: data, model, train")
            parts[section] = _changed(getattr(base, section), section, fields)
        return dataclasses.replace(base, **parts)

    @classmethod
    def from_file(cls, path: str | Path, base: RunConfig | None = None) -> RunConfig:
        """:meth:`from_dict` on a JSON file, or a TOML file when its name ends in ``.toml``
        (read by :func:`read_config_file`)."""
        path = Path(path)
        mapping = read_config_file(path)
        try:
            return cls.from_dict(mapping, base)
        except ValueError as error:
            raise ValueError(f"config file {path}: {error}") from None


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key given twice is refused, as TOML refuses it (JSON itself
    would keep the last value silently, so a setting written twice would change nothing visibly)."""
    table: dict[str, Any] = {}
    for key, value in pairs:
        if key in table:
            raise _DuplicateKey(key)
        table[key] = value
    return table


def read_config_file(path: str | Path) -> Any:
    """The content of a JSON config file (TOML when the name ends in ``.toml``) as plain data; a
    ValueError naming the file says why it cannot be read or parsed (duplicate keys included)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ValueError(f"cannot read the config file {path}: {reason}") from None
    if path.suffix.lower() == ".toml":
        import tomllib  # noqa: PLC0415 - Python >= 3.11 only (3.10 is supported): .toml files alone need it

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {path} is not valid TOML: {error}") from None
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey as error:
        raise ValueError(f"config file {path}: the key {error.args[0]!r} appears twice in one table") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"config file {path} is not valid JSON: {error.msg} at line {error.lineno}, "
                         f"column {error.colno}") from None


def _changed(part: Any, section: str, fields: Any) -> Any:
    """The config dataclass ``part`` with ``fields`` (a mapping from field name to value) changed."""
    kind = type(part).__name__
    if not isinstance(fields, Mapping):
        raise ValueError(f"config key {section!r} must be a table of {kind} fields (got {fields!r})")
    types = {f.name: f.type for f in dataclasses.fields(part)}
    changes = {}
    for name, value in fields.items():
        if name not in types:
            raise ValueError(f"unknown config key {section}.{name!s}; {kind} allows: {', '.join(types)}")
        changes[name] = _coerce(value, str(types[name]), f"{kind}.{name}")
    return dataclasses.replace(part, **changes)


def _coerce(value: Any, annotation: str, field_name: str) -> Any:
    """``value`` as the type ``annotation`` (e.g. ``"float"``, ``"tuple[str, ...]"``, ``"int | None"``);
    a ValueError naming the field, the type and the value if it is not one. Integers are accepted as
    floats (and converted, so the config hash does not depend on how a number was written)."""
    for option in (a.strip() for a in annotation.split("|")):
        ok, converted = _convert(value, option)
        if ok:
            return converted
    raise ValueError(f"{field_name} must be of type {annotation} (got {value!r}, of type {type(value).__name__})")


def _convert(value: Any, annotation: str) -> tuple[bool, Any]:
    """(True, the converted value) when ``value`` is of the simple type ``annotation``, else (False, None)."""
    if annotation == "None":
        return value is None, None
    if annotation == "bool":
        return isinstance(value, bool), value
    if annotation == "int":
        return _is_int(value), value
    if annotation == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if annotation == "str":
        return isinstance(value, str), value
    if annotation.startswith("tuple[") and annotation.endswith("]"):
        items = [a.strip() for a in annotation[len("tuple["):-1].split(",")]
        if not isinstance(value, (list, tuple)):
            return False, None
        if items[-1] == "...":
            items = items[:1] * len(value)
        if len(items) != len(value):
            return False, None
        converted = [_convert(v, t) for v, t in zip(value, items)]
        return all(ok for ok, _ in converted), tuple(v for _, v in converted)
    return False, None


def synthetic_preset(head: str = "FC", **model_changes: Any) -> RunConfig:
    """The paper's synthetic setting for one head: d = 10, query std 0.3, lr 0.1, 5000 epochs."""
    return RunConfig(model=ModelConfig(head=head, **model_changes))


def ablation_preset(head: str = "FC", freeze: tuple[str, ...] = ()) -> RunConfig:
    """The ablation setting of F4 (values from the authors' code): embedding init std 0.1, 6000 epochs, optional frozen groups."""
    return RunConfig(model=ModelConfig(head=head, embed_init_std=0.1), train=TrainConfig(epochs=6000, freeze=freeze))


SST_VARIANTS = ("default", "patience2000", "unmasked", "code")
"""T1's variants: the paper's setting, the authors' code's patience, the code's unmasked padding, and all of
the code's settings at once (a diagnostic for a T1 cell that misses: unmasked, patience 2000, embedding std 1e-6,
d_e = 100 for TC)."""


def sst_preset(kind: str = "SST2", head: str = "FC", variant: str = "default") -> RunConfig:
    """T1's setting (the paper's, with the authors' code where the paper is silent): d_e = 200, d_k = d_q = 10,
    lr 0.1, early stopping on the dev loss
    (patience 100, or 2000 as in the authors' code), epoch cap 100,000, float32, snapshots every 100."""
    _require(variant in SST_VARIANTS, "sst_preset variant", f"one of {list(SST_VARIANTS)}", variant)
    code = variant == "code"
    model_changes = {"embed_init_std": 1e-6, "d_embed": 100 if head == "TC" else 200} if code else {}
    return RunConfig(
        data=SSTDataConfig(kind=kind, mask_padding=variant not in ("unmasked", "code")),
        model=ModelConfig(head=head, d_key=10, **{"d_embed": 200, **model_changes}),
        train=TrainConfig(epochs=100_000, dtype="float32", patience=2000 if variant in ("patience2000", "code") else 100,
                          record_every=100),
    )



def trec_preset(head: str = "FC") -> RunConfig:
    """The TREC chapter's setting: SST's model and training settings (:func:`sst_preset`: d_e = 200, d_k = 10,
    lr 0.1, float32, early stopping on the dev loss with patience 100, epoch cap 100,000) on TREC's coarse task."""
    base = sst_preset("SST2", head)
    return RunConfig(data=TRECDataConfig(), model=base.model, train=base.train)
