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
