import numpy as np
import pytest
import torch

from core.labels.targets import build_targets
from core.training.model import FusionClassifier
from core.training.train import TrainConfig, predict_proba, train_model


@pytest.fixture(scope="module")
def toy():
    """Four well-separated classes in two modalities; the image is missing for a third of the items."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)).astype(np.float32) * 3
    y = np.repeat(np.arange(4), 60)
    x = centres[y] + rng.normal(scale=0.5, size=(len(y), 6)).astype(np.float32)
    mask = np.ones((len(y), 2), dtype=bool)
    mask[::3, 1] = False
    x[~mask[:, 1], 3:] = 0
    order = rng.permutation(len(y))
    emb = np.eye(4, dtype=np.float32)
    return x, mask, [("text", 0, 3), ("image", 3, 6)], y, order[:160], order[160:200], order[200:], emb


def fit(toy, kind="semantic", **overrides):
    x, mask, slices, y, tr, va, _, emb = toy
    targets = build_targets(kind, embeddings=emb, alpha=0.2, temperature=0.1, k=2, n_classes=4)
    cfg = TrainConfig(**({"epochs": 6, "batch_size": 32, "hidden": 32, "seed": 7, "members": 1} | overrides))
    return train_model(x, mask, slices, y, tr, va, targets, cfg, label_embeddings=emb, codes=np.eye(4, dtype=np.uint8))


@pytest.mark.slow
def test_learns_and_predicts_distributions(toy):
    result = fit(toy)
    x, mask, _, y, _, _, test, _ = toy
    probs = predict_proba(result.model, x, mask, test)
    assert probs.shape == (len(test), 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y[test]).mean() > 0.9
    assert result.history[-1].val_top1 > 0.9 and 0 <= result.best_epoch < 6


@pytest.mark.slow
def test_deterministic_on_cpu(toy):
    a, b = fit(toy), fit(toy)
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())


@pytest.mark.slow
def test_curriculum_anneals_to_one_hot_and_aux_head_trains(toy):
    result = fit(toy, curriculum_epochs=4, aux_weight=0.5, patience=0)
    assert [round(h.smoothing, 3) for h in result.history] == [0.2, 0.15, 0.1, 0.05, 0.0, 0.0]
    assert result.model.aux_head is not None and result.model.aux_head.out_features == 4


@pytest.mark.slow
def test_cancel_between_steps(toy):
    x, mask, slices, y, tr, va, _, emb = toy
    calls = []
    result = train_model(x, mask, slices, y, tr, va, build_targets("onehot", n_classes=4), TrainConfig(epochs=5, batch_size=16, hidden=8),
                         label_embeddings=emb, should_stop=lambda: calls.append(1) or len(calls) > 3)
    assert result.cancelled and len(calls) == 4 and not result.history


@pytest.mark.slow
def test_memory_mapped_features(toy, tmp_path):
    x, mask, slices, y, tr, va, _, emb = toy
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    result = train_model(mm, mask, slices, y, tr, va, build_targets("onehot", n_classes=4), TrainConfig(epochs=2, hidden=8, members=1),
                         label_embeddings=emb)
    assert len(result.history) == 2


def test_missing_modality_contributes_nothing():
    model = FusionClassifier([("text", 0, 2), ("image", 2, 4)], 3, hidden=8, fusion="gated", dropout=0.0).eval()
    x = torch.tensor([[1.0, 2.0, 5.0, 6.0], [1.0, 2.0, -9.0, 9.0]])
    mask = torch.tensor([[True, False], [True, False]])
    logits, _ = model(x, mask)
    assert torch.allclose(logits[0], logits[1])


def test_bad_config():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0).validate()


def test_cosine_curriculum_is_reached_through_the_declared_setting(toy):
    """METHOD.md's cosine variant: a_t = a_0 (1 + cos(pi t / E_c)) / 2, chosen by --curriculum-shape."""
    from core.settings import ExperimentConfig
    from core.training.train import train_config

    x, mask, slices, y, tr, va, _, emb = toy
    config = ExperimentConfig(curriculum_epochs=4, curriculum_shape="cosine", epochs=6, batch_size=32, hidden=32, seed=7,
                              patience=0, device="cpu", members=1)
    targets = build_targets("semantic", embeddings=emb, alpha=0.2, temperature=0.1, k=2, n_classes=4)
    result = train_model(x, mask, slices, y, tr, va, targets, train_config(config), label_embeddings=emb)
    assert [round(h.smoothing, 4) for h in result.history] == [0.2, 0.1707, 0.1, 0.0293, 0.0, 0.0]


def test_weight_average_by_hand():
    """Horizon 1 epoch of 2 steps: decay 1 - 1/2, so after the steps w1, w2 the average is w1/2 + w2/2
    (torch's AveragedModel starts from the first step's weights); 0 epochs is off."""
    import torch

    from core.training.train import weight_average

    net = torch.nn.Linear(1, 1, bias=False)
    assert weight_average(net, 0.0, 2) is None
    average = weight_average(net, 1.0, 2)
    for w in (4.0, 2.0):
        with torch.no_grad():
            net.weight.fill_(w)
        average.update_parameters(net)
    assert average.module.weight.item() == pytest.approx(3.0)
    net.weight.data.fill_(0.0)
    average.update_parameters(net)
    assert average.module.weight.item() == pytest.approx(1.5)


def test_training_keeps_the_averaged_weights(toy):
    """With ema_epochs the returned model is the moving average, not the last step's weights: the same
    steps (the same training losses) as without averaging, but a different model."""
    plain = fit(toy, "onehot", ema_epochs=0.0, patience=0, epochs=3)
    averaged = fit(toy, "onehot", ema_epochs=2.0, patience=0, epochs=3)
    assert [h.train_loss for h in plain.history] == pytest.approx([h.train_loss for h in averaged.history])
    assert not np.allclose(plain.model.head.weight.detach().numpy(), averaged.model.head.weight.detach().numpy())


def test_an_ensemble_scores_the_log_of_its_members_mean_probability():
    """Two members with logits (0, ln 3) and (ln 3, 0): probabilities (1/4, 3/4) and (3/4, 1/4), mean (1/2, 1/2),
    so the ensemble's scores are (ln 1/2, ln 1/2) and its softmax is their mean."""
    import math

    from core.training.model import Ensemble

    members = [FusionClassifier([("text", 0, 1)], 2, hidden=2, dropout=0.0) for _ in range(2)]
    for member, logits in zip(members, ((0.0, math.log(3)), (math.log(3), 0.0)), strict=True):
        member.head.weight.data.zero_()
        member.head.bias.data.copy_(torch.tensor(logits))
    scores, aux = Ensemble(members).eval()(torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool))
    assert torch.allclose(scores, torch.full((1, 2), math.log(0.5))) and aux is None
    with pytest.raises(ValueError, match="at least two"):
        Ensemble(members[:1])


def test_members_train_apart_and_the_first_is_the_single_model(toy):
    """members=3: three models from different seeds (different weights), each epoch logged with its member,
    and member 0 is exactly the model members=1 trains."""
    from core.training.model import Ensemble

    single = fit(toy, "onehot", epochs=3, patience=0)
    ensemble = fit(toy, "onehot", epochs=3, patience=0, members=3)
    assert isinstance(ensemble.model, Ensemble) and len(ensemble.model.members) == 3
    assert [h.member for h in ensemble.history] == [0, 0, 0, 1, 1, 1, 2, 2, 2] and len(ensemble.best_epochs) == 3
    first, second = (m.head.weight.detach() for m in ensemble.model.members[:2])
    assert torch.equal(first, single.model.head.weight.detach()) and not torch.allclose(first, second)
    x, mask, _, y, _, _, test, _ = toy
    probs = predict_proba(ensemble.model, x, mask, test)
    by_member = np.mean([predict_proba(m, x, mask, test) for m in ensemble.model.members], axis=0)
    assert np.abs(probs - by_member).max() <= 1e-6 and (probs.argmax(1) == y[test]).mean() > 0.9


def test_model_json_members_build_the_saved_shape():
    """model.json written before ensembles (no "members") is one FusionClassifier; members 3 an Ensemble of
    three; an out-of-range count is named as the damage."""
    from core.training.model import Ensemble
    from core.training.predictor import _check_info, build_model

    info = {"slices": [["text", 0, 4]], "n_classes": 3, "hidden": 8, "fusion": "concat", "dropout": 0.2,
            "temperature": 1.0, "encoder_identity": "x", "image_source": None}
    assert _check_info(dict(info)) is None and isinstance(build_model(info), FusionClassifier)
    three = build_model(info | {"members": 3})
    assert isinstance(three, Ensemble) and len(three.members) == 3 and three.slices == [("text", 0, 4)]
    assert {k.split(".")[0] for k in three.state_dict()} == {"members"}
    for bad in (0, 99, "3"):
        assert "members" in _check_info(info | {"members": bad})


def test_training_progress_shares_the_bar_between_members():
    """members 2, epochs 4: member 1's first epoch logged is (1 + 1/4) / 2 of the bar."""
    import pandas as pd

    from core.runs.progress import epoch_curves, training_progress

    log = pd.DataFrame({"epoch": [0, 1, 2, 0], "member": [0, 0, 0, 1], "val_top1": [0.5, 0.6, 0.7, 0.55]})
    assert training_progress(log, 4, 2) == (0.625, "epoch 1/4 of member 2/2")
    assert training_progress(log.drop(columns="member"), 4) == (1.0, "epoch 4/4")
    assert epoch_curves(log, ["val_top1"]).member.tolist() == [1, 1, 1, 2]
    assert epoch_curves(log.drop(columns="member"), ["val_top1"]).member.tolist() == [1, 1, 1, 1]
