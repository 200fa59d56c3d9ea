"""Configuration: presets match the paper, invalid values fail with the field and the allowed range."""

from __future__ import annotations

import pytest

from attnlib.config import (
    ModelConfig,
    RunConfig,
    SyntheticDataConfig,
    TrainConfig,
    ablation_preset,
    sst_preset,
    synthetic_preset,
)


def test_synthetic_preset_is_the_papers_setting() -> None:
    config = synthetic_preset()
    assert (config.data.n_topics, config.data.words_per_topic, config.data.n_nontopic, config.data.m) == (4, 2, 5000, 20)
    assert (config.data.n_train, config.data.n_test) == (800, 200)
    assert (config.model.d_embed, config.model.d_key, config.model.query_std) == (10, 10, 0.3)
    assert config.model.key_init_std == 0.0 and not config.model.train_query
    assert config.model.embed_init_std ** 2 == pytest.approx(1e-6)
    assert (config.train.lr, config.train.epochs) == (0.1, 5000)


def test_ablation_preset() -> None:
    config = ablation_preset("TC", freeze=("keys",))
    assert config.model.embed_init_std == 0.1 and config.train.epochs == 6000 and config.train.freeze == ("keys",)


@pytest.mark.parametrize("make, field, allowed", [
    (lambda: TrainConfig(lr=0), "TrainConfig.lr", "> 0"),
    (lambda: TrainConfig(lr=-0.1), "TrainConfig.lr", "> 0"),
    (lambda: TrainConfig(lr=float("nan")), "TrainConfig.lr", "finite"),
    (lambda: TrainConfig(epochs=0), "TrainConfig.epochs", ">= 1"),
    (lambda: TrainConfig(epochs=2.5), "TrainConfig.epochs", "integer"),
    (lambda: TrainConfig(dtype="float16"), "TrainConfig.dtype", "float32"),
    (lambda: TrainConfig(freeze=("keys", "bias")), "TrainConfig.freeze", "subset"),
    (lambda: TrainConfig(patience=0), "TrainConfig.patience", ">= 1"),
    (lambda: SyntheticDataConfig(m=0), "SyntheticDataConfig.m", ">= 1"),
    (lambda: SyntheticDataConfig(n_nontopic=3), "SyntheticDataConfig.n_nontopic", ">= n_topics"),
    (lambda: SyntheticDataConfig(n_topics=1), "SyntheticDataConfig.n_topics", ">= 2"),
    (lambda: SyntheticDataConfig(m_range=(5, 2)), "SyntheticDataConfig.m_range", "lo <= hi"),
    (lambda: ModelConfig(head="XL"), "ModelConfig.head", "FC"),
    (lambda: ModelConfig(query_std=0), "ModelConfig.query_std", "> 0"),
    (lambda: ModelConfig(d_embed=0), "ModelConfig.d_embed", ">= 1"),
    (lambda: ModelConfig(fc_init="eye"), "ModelConfig.fc_init", "orthonormal"),
    (lambda: RunConfig().replace(optimizer={"lr": 1}), "RunConfig.replace", "data"),
])
def test_invalid_values_name_field_and_range(make, field: str, allowed: str) -> None:
    with pytest.raises(ValueError) as error:
        make()
    assert field in str(error.value) and allowed in str(error.value)


def test_replace_and_hash() -> None:
    base = synthetic_preset()
    changed = base.replace(model={"head": "TL"}, train={"epochs": 10})
    assert changed.model.head == "TL" and changed.train.epochs == 10 and base.model.head == "FC"
    assert base.config_hash() == synthetic_preset().config_hash() != changed.config_hash()
    assert changed.model.name == "Attn-TL"


@pytest.mark.parametrize("preset", [synthetic_preset("TL"), ablation_preset("TC", ("keys",)), sst_preset("SST5", "TC")])
def test_from_dict_round_trips_to_dict(preset: RunConfig) -> None:
    """A config written out as plain data (e.g. into a JSON file) reads back as the same config."""
    base = RunConfig(data=type(preset.data)())
    assert RunConfig.from_dict(preset.to_dict(), base) == preset
    assert RunConfig.from_dict(preset.to_dict(), base).config_hash() == preset.config_hash()
