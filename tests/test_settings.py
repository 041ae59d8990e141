"""Every setting is declared once (core/settings.py); the CLI and validation read it from there."""

import argparse
import math

import pytest

from core import settings
from core.cli.main import build_parser
from core.settings import ExperimentConfig


def train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_cli_arguments_match_the_declarations():
    actions = {a.dest: a for a in train_parser()._actions}
    for s in settings.settings():
        if not s.cli:
            continue
        action = actions[s.name]
        assert s.flag in action.option_strings
        if s.choices and not s.open_choices:
            assert list(action.choices) == list(s.choices)
        assert s.help.split(" (default")[0] in action.help


def test_cli_defaults_are_the_dataclass_defaults():
    args = train_parser().parse_args(["--data", "x.csv", "--label-column", "c", "--text-column", "t", "--out", "r"])
    config = settings.config_from_args(args)
    assert config == ExperimentConfig(data="x.csv", label_columns=["c"], text_columns=["t"])
    args = train_parser().parse_args(["--data", "x.csv", "--label-column", "a", "--label-column", "b", "--text-column", "t",
                                      "--no-text-features", "--column-names", "a, b,t", "--alpha", "0.3", "--out", "r"])
    config = settings.config_from_args(args)
    assert (config.label_columns, config.use_text, config.column_names, config.alpha) == (["a", "b"], False, ["a", "b", "t"], 0.3)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("temperature", math.nan, "temperature must be a finite number"),
    ("temperature", math.inf, "temperature must be a finite number"),
    ("temperature", 0.0, "temperature must be > 0"),
    ("beta", -1.0, "beta must be >= 0"),
    ("alpha", 1.5, "alpha must be >= 0 and <= 1"),
    ("max_depth", 0, "max_depth must be >= 1"),
    ("k", 2.5, "k must be int"),
    ("targets", "fuzzy", "targets must be one of onehot, uniform"),
    ("encoder", "bert", "encoder must be one of auto"),
])
def test_validation_names_the_setting_and_its_bounds(name, value, message):
    config = ExperimentConfig(data="x.csv", label_columns=["c"], text_columns=["t"]).replace(**{name: value})
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_open_choices_admit_a_format_string_and_values_are_converted():
    config = ExperimentConfig(data="x.csv", label_columns=["c"], text_columns=["t"], template="{name} ({parent})",
                              k="7", alpha="0.25")
    config.validate()
    assert (config.template, config.k, config.alpha) == ("{name} ({parent})", 7, 0.25)


def test_every_setting_has_help_group_and_a_valid_default():
    for s in settings.settings():
        assert s.help and s.group in settings.GROUPS
        if s.default is not None and not s.is_list:
            assert s.check(s.default) == s.default


def test_device_reaches_training():
    import torch

    from core.settings import ExperimentConfig
    from core.training.train import train_config

    assert train_config(ExperimentConfig(device="cpu")).device == "cpu"
    assert train_config(ExperimentConfig(device="auto")).device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_train_config_is_derived_from_the_declarations():
    """TrainConfig's defaults and bounds are the declared ones (once they were 20 epochs and patience 5
    beside the declared 15 and 4); a run's config reaches it whole."""
    import dataclasses

    from core.training.train import TrainConfig, train_config

    declared = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in ("aux_weight", "threads", "device")}
    assert declared == {name: settings.get(name).default for name in declared}
    assert {"epochs", "patience", "lr", "hidden", "fusion", "curriculum_shape"} <= set(declared)
    config = ExperimentConfig(epochs=3, patience=1, fusion="gated", aux_codes="taxonomy", aux_weight=0.3, device="cpu")
    made = train_config(config)
    assert (made.epochs, made.patience, made.fusion, made.aux_weight) == (3, 1, "gated", 0.3)
    assert train_config(config.replace(aux_codes="none")).aux_weight == 0.0
    with pytest.raises(ValueError, match="patience must be >= 0"):
        TrainConfig(patience=-1).validate()


def test_settings_import_neither_training_nor_torch():
    """The settings -> train -> targets -> settings cycle is gone, and the CLI's parser stays light."""
    import subprocess
    import sys

    code = "import sys, core.settings; print(sorted(m for m in sys.modules if m.startswith(('core.training', 'torch'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
