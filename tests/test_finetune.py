"""Fine-tuning the text encoder (issue 18, item 2): one step on a few dozen items changes the encoder's
weights, the tuned encoder is saved beside the head and reloaded by Predictor to the same probabilities,
the item cache never sees a tuned vector, and what cannot combine is refused with one clear message."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from core import settings
from core.errors import SettingError
from core.settings import ExperimentConfig
from tests.conftest import SAMPLE_PRODUCTS

PER_CLASS = 16


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """A few dozen sample products of a few categories (every category with enough items to split)."""
    frame = pd.read_csv(SAMPLE_PRODUCTS)
    counts = frame["category_path"].value_counts()
    keep = [c for c in counts.index if counts[c] >= PER_CLASS][:3]
    small = pd.concat([frame[frame["category_path"] == c].head(PER_CLASS) for c in keep])
    path = tmp_path_factory.mktemp("tiny") / "products.csv"
    small.to_csv(path, index=False)
    return path


def train_args(table, out, *extra: str) -> list[str]:
    """`train` for one optimisation step: a single epoch with a batch larger than the training split."""
    return ["train", "--data", str(table), "--label-column", "category_path", "--text-column", "title", "--id-column", "id",
            "--epochs", "1", "--batch-size", "512", "--hidden", "32", "--val-fraction", "0.25", "--test-fraction", "0.25",
            "--targets", "onehot", "--out", str(out), "--quiet", "--json", *extra]


@pytest.fixture(scope="module")
def tuned_run(tiny_table, tmp_path_factory):
    """A MiniLM run fine-tuned for one step, with its own empty item cache (restored afterwards)."""
    from core.cli.main import main

    cache = tmp_path_factory.mktemp("tuned-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAXOLENS_CACHE", str(cache))
        out = tmp_path_factory.mktemp("tuned-runs")
        assert main(train_args(tiny_table, out, "--encoder", "minilm", "--finetune-encoder", "--encoder-lr", "1e-3")) == 0
        run_dir = next(p for p in out.iterdir() if p.is_dir())
        yield {"run_dir": run_dir, "cache": cache}


def changed_tensors(tower: torch.nn.Module, frozen: torch.nn.Module, prefix: str = "") -> list[str]:
    """Names of the tower's weights that differ from the frozen model's weights of the same name."""
    original = frozen.state_dict()
    return [k for k, v in tower.state_dict().items()
            if v.is_floating_point() and not torch.equal(v, original[k.removeprefix(prefix)])]


@pytest.mark.slow
def test_one_step_changes_the_encoder_and_leaves_the_cached_one_alone(tuned_run):
    from core.data.encoders import cached_encoder
    from core.training import finetune
    from core.training.predictor import Predictor

    run_dir = tuned_run["run_dir"]
    info = json.loads((run_dir / "model.json").read_text())
    assert info["finetuned_encoder"] == finetune.ENCODER_FILE and (run_dir / finetune.ENCODER_FILE).is_file()
    assert "fine-tuned" in json.loads((run_dir / "metrics.json").read_text())["encoder"]
    predictor = Predictor.load(run_dir)
    tuned = predictor.encoder
    assert isinstance(tuned, finetune.TunedEncoder) and not tuned.cacheable
    frozen = cached_encoder("minilm", None, "auto").encoder  # the one the run started from, shared by the process
    assert tuned.frozen.identity == frozen.identity == info["encoder_identity"]
    changed = changed_tensors(tuned.tower, frozen.model, prefix="model.")
    assert len(changed) > 10  # one AdamW step moves every weight that got a gradient
    fresh = Predictor.load(run_dir).encoder.frozen  # a newly loaded frozen encoder agrees with the cached one
    assert not changed_tensors(frozen.model, fresh.model)


@pytest.mark.slow
def test_saved_and_reloaded_give_the_same_probabilities(tuned_run):
    from core.training.predictor import Predictor

    run_dir = tuned_run["run_dir"]
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    table = pd.read_csv(json.loads((run_dir / "config.json").read_text())["data"]).astype({"id": str})
    test = table.set_index("id").loc[predictions["id"]].reset_index()
    answers = Predictor.load(run_dir).predict_frame(test)
    assert (answers["pred_1"].to_numpy() == predictions["pred_1"].to_numpy()).all()
    probs = [c for c in predictions.columns if c.startswith("prob_")]
    assert np.abs(answers[probs].to_numpy() - predictions[probs].to_numpy()).max() <= 1e-6


@pytest.mark.slow
def test_the_item_cache_holds_frozen_vectors_only(tuned_run, tiny_table):
    from core.data.encoders import cached_encoder, item_cache
    from core.data.itemcache import item_keys
    from core.training.predictor import Predictor

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAXOLENS_CACHE", str(tuned_run["cache"]))
        predictor = Predictor.load(tuned_run["run_dir"])
        texts = pd.read_csv(tiny_table)["title"].astype(str).tolist()
        tuned_vectors = predictor.encoder.encode_text(texts)
        predictor.predict_frame(pd.read_csv(tiny_table))  # predicting writes nothing to the cache either
        frozen = cached_encoder("minilm", None, "auto").encoder
        # one cache folder, the frozen encoder's (product texts and category names): none for the tuned encoder
        assert [p.name for p in (tuned_run["cache"] / "items").iterdir()] == [item_cache(frozen).folder.name]
        cached, found = item_cache(frozen).get(item_keys(frozen.identity, "text", texts))
    assert found.all()
    assert np.allclose(cached, frozen.encode_text(texts), atol=1e-5)  # what is cached is the frozen model's
    assert np.abs(cached - tuned_vectors).max() > 1e-3  # and the tuned model's vectors are not those


@pytest.mark.slow
def test_predict_refuses_a_features_folder_for_a_tuned_run(tuned_run, tiny_table, tmp_path, capsys):
    from core.cli.main import main

    capsys.readouterr()
    code = main(["predict", str(tuned_run["run_dir"]), "--data", str(tiny_table), "--features", str(tmp_path),
                 "--out", str(tmp_path / "a.parquet"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "fine-tuned its text encoder" in err and "Traceback" not in err
    assert not (tmp_path / "a.parquet").exists()


REFUSED = [  # (the settings, the CLI flags, what the message says)
    (dict(features="FEATURES"), ["--features", "FEATURES"], "--features reads frozen vectors"),
    (dict(encoder="none"), ["--encoder", "none"], "--encoder none has no sentence encoder"),
    (dict(use_text=False), ["--no-text-features"], "--no-text-features leaves the text out"),
]


@pytest.mark.parametrize("overrides, flags, message", REFUSED)
def test_what_cannot_combine_with_fine_tuning_is_refused(overrides, flags, message, tiny_table, tmp_path, capsys):
    from core.cli.main import main

    config = ExperimentConfig(data=str(tiny_table), label_columns=["category_path"], text_columns=["title"],
                              finetune_encoder=True, **overrides)
    with pytest.raises(SettingError, match=f"--finetune-encoder cannot be used here: {message}"):
        config.validate()
    config.replace(finetune_encoder=False).validate()  # the same settings without fine-tuning are fine
    capsys.readouterr()
    flags = [str(tmp_path) if f == "FEATURES" else f for f in flags]
    assert main(train_args(tiny_table, tmp_path / "runs", "--finetune-encoder", *flags)) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run left behind


def test_the_settings_are_declared_with_flags_bounds_and_help(capsys):
    from core.cli.main import build_parser
    from core.training.train import TrainConfig

    tune, lr = settings.get("finetune_encoder"), settings.get("encoder_lr")
    assert tune.default is False and tune.flag == "--finetune-encoder" and "item cache" in tune.help
    assert lr.lo == 0 and lr.lo_open and lr.default < settings.get("lr").default
    assert TrainConfig().finetune_encoder is False and TrainConfig().encoder_lr == lr.default
    with pytest.raises(SettingError, match="encoder_lr must be > 0"):
        TrainConfig(encoder_lr=0.0).validate()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "--finetune-encoder" in out and "--encoder-lr" in out


@pytest.mark.slow
def test_clip_text_tower_with_random_weights_fine_tunes_one_step(tiny_table, tmp_path):
    from core.data.encoders import cached_encoder, item_cache
    from core.runs.store import RunStore
    from core.training import finetune
    from core.training.experiment import execute_run
    from core.training.predictor import Predictor

    config = ExperimentConfig(data=str(tiny_table), label_columns=["category_path"], text_columns=["title"], id_column="id",
                              encoder="clip-random", finetune_encoder=True, encoder_lr=1e-3, epochs=1, batch_size=512,
                              hidden=32, targets="onehot", val_fraction=0.25, test_fraction=0.25, device="cpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAXOLENS_CACHE", str(tmp_path / "cache"))
        run_dir = RunStore(tmp_path / "runs").create(config.to_dict()).path
        summary = execute_run(run_dir)
        predictor = Predictor.load(run_dir)
        frozen = cached_encoder("clip-random", None, "cpu").encoder
        assert isinstance(predictor.encoder.tower, finetune.ClipTextTower)
        assert changed_tensors(predictor.encoder.tower, frozen.model)  # the text tower moved
        assert torch.equal(predictor.encoder.frozen.model.visual.conv1.weight, frozen.model.visual.conv1.weight)
        predictions = pd.read_parquet(run_dir / "predictions.parquet")
        table = pd.read_csv(tiny_table).astype({"id": str}).set_index("id").loc[predictions["id"]].reset_index()
        answers = predictor.predict_frame(table)
        assert [p.name for p in (tmp_path / "cache" / "items").iterdir()] == [item_cache(frozen).folder.name]
    assert summary["modalities"][0] == "text"
    assert summary["members"] == 1 and any("trains one model, not 5 ensemble members" in n for n in summary["notes"])
    assert "members" in json.loads((run_dir / "model.json").read_text()) and predictor.model.__class__.__name__ == "FusionClassifier"
    probs = [c for c in predictions.columns if c.startswith("prob_")]
    assert np.abs(answers[probs].to_numpy() - predictions[probs].to_numpy()).max() <= 1e-6


@pytest.mark.slow
def test_predict_on_ray_uses_the_tuned_encoder_like_one_process(tuned_run, tiny_table, ray_head, tmp_path):
    from tests.test_cli_taxonomy import run_cli
    from tests.test_ray_data import summary

    columns = ["--data", tiny_table, "--text-column", "title", "--id-column", "id", "--json", "--quiet"]
    env = ray_head["env"] | {"TAXOLENS_CACHE": str(tmp_path / "cache")}
    on_ray = summary(run_cli("predict", tuned_run["run_dir"], *columns, "--out", tmp_path / "ray.parquet",
                             "--ray-address", ray_head["address"], "--chunk-rows", "20", env=env))
    one = summary(run_cli("predict", tuned_run["run_dir"], *columns, "--out", tmp_path / "one.parquet", env=env))
    assert on_ray["engine"] == "ray-cluster" and on_ray["encoder"] == one["encoder"] and one["encoder"].endswith("+finetuned")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray.parquet"), pd.read_parquet(tmp_path / "one.parquet"),
                                  check_exact=False, atol=1e-6)
    assert not (tmp_path / "cache" / "items").exists()  # neither path cached a tuned vector (no frozen one was needed)


@pytest.mark.slow
def test_audit_fine_tunes_a_copy_of_the_encoder_per_fold(tiny_table, tmp_path, capsys):
    from core.cli.main import main
    from core.runs.store import Run

    args = train_args(tiny_table, tmp_path / "runs", "--encoder", "minilm", "--finetune-encoder", "--encoder-lr", "1e-3")
    args = ["audit", "--folds", "2", *[a for a in args[1:] if a not in ("--json",)], "--json"]
    assert main(args) == 0
    run = Run.open(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_dir"])
    frame = run.predictions()
    assert sorted(frame["fold"].unique()) == [0, 1] and len(frame) == len(pd.read_csv(tiny_table))
    assert run.experiment_config().finetune_encoder
