"""The run specification: frozen sections, one serialisation, flags generated from the fields."""

import dataclasses

import pytest
from absl import flags

from hvd_pretrain.cli import options
from hvd_pretrain.data.config import DataConfig
from hvd_pretrain.errors import ConfigError
from hvd_pretrain.models.config import ModelConfig, preset
from hvd_pretrain.train.config import TrainConfig
from hvd_pretrain.train.spec import RunSpec, Source


def _spec():
    return RunSpec(preset("tiny", vocab_size=1000), DataConfig(dupe_factor=2), TrainConfig(per_rank_batch=4),
                   Source(data_dir="/d", explicit=("dupe_factor",)))


def test_sections_are_frozen():
    spec = _spec()
    for section in (spec, spec.model, spec.data, spec.train, spec.source):
        with pytest.raises(dataclasses.FrozenInstanceError):
            section.seed = 1


def test_round_trip_through_a_dict():
    spec = _spec()
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert set(spec.to_dict()) == {"model", "data", "train", "source"}


@pytest.mark.parametrize("broken, named", [
    (lambda d: d["train"].update(learning_rat=1e-3), "learning_rat"),
    (lambda d: d["data"].update(dupe=3), "dupe"),
    (lambda d: d["model"].update(hidden=3), "hidden"),
    (lambda d: d.update(optimiser={}), "optimiser"),
])
def test_unknown_keys_are_errors(broken, named):
    values = _spec().to_dict()
    broken(values)
    with pytest.raises(ConfigError, match=named):
        RunSpec.from_dict(values)


def test_resolving_returns_a_new_spec_and_changes_nothing():
    spec = _spec()
    before = spec.to_dict()
    resolved = {"vocab_size": 512, "max_seq_length": 64, "max_predictions": 10, "num_instances": 1000}
    new, note = spec.resolved(resolved, world_size=2)
    assert spec.to_dict() == before
    assert (new.model.vocab_size, new.train.max_seq_length, new.train.max_predictions_per_seq) == (512, 64, 10)
    assert note is None and new.train.num_train_steps == spec.train.num_train_steps
    budget = RunSpec(spec.model, spec.data, spec.train.replace(train_examples=800), spec.source)
    new, note = budget.resolved(resolved, world_size=2)
    assert new.train.num_train_steps == 100 and "global batch 8" in note  # 800 examples / (4 x 1 x 2)


def _flag_values(argv, *sections):
    fv = flags.FlagValues()
    for section, kw in sections:
        options.define(section, fv, **kw)
    fv(["tool"] + argv)
    return fv


def test_flags_come_from_the_fields_with_their_defaults_and_help():
    fv = _flag_values([], (TrainConfig, {}), (DataConfig, {}))
    assert fv["micro_batch_size"].default == TrainConfig.per_rank_batch == 32
    assert fv["dupe_factor"].default == DataConfig.dupe_factor == 10
    assert "Optimizer: AdamW" in fv["optimizer"].help and fv["precision"].parser.enum_values == ["fp32", "fp16",
                                                                                                   "bf16"]
    assert "seed" in fv  # declared once although both sections have it
    values = options.read(TrainConfig, fv, {"per_rank_batch", "seed"})
    assert values == {"per_rank_batch": 32, "seed": 12345}


def test_every_option_of_every_section_becomes_a_flag():
    for section in (TrainConfig, DataConfig):
        fv = _flag_values([], (section, {}))
        for field, name, _ in section.options():
            assert name in fv and fv[name].default == field.default, name


def test_override_flags_default_to_none_and_keep_the_preset():
    fv = _flag_values(["--hidden_dropout=0.2"], (ModelConfig, {"only": ("hidden_dropout", "sharing"),
                                                                "override": True}))
    assert options.read(ModelConfig, fv, {"hidden_dropout", "sharing"}) == {"hidden_dropout": 0.2}


def test_a_deprecated_name_still_works_with_a_warning():
    warnings = []
    fv = _flag_values(["--train_batch_size=8"], (TrainConfig, {}))
    assert options.read(TrainConfig, fv, {"per_rank_batch"}, warn=warnings.append) == {"per_rank_batch": 8}
    assert warnings == ["warning: --train_batch_size is deprecated; use --micro_batch_size (it still works in this"
                        " release)"]
    assert options.present(TrainConfig, fv, {"per_rank_batch"}) == {"per_rank_batch"}
    fv = _flag_values(["--train_batch_size=8", "--micro_batch_size=16"], (TrainConfig, {}))
    with pytest.raises(ConfigError, match="--train_batch_size=8 and --micro_batch_size=16 both given"):
        options.read(TrainConfig, fv, {"per_rank_batch"})
