"""Checkpoints across engine versions: a chainzrule 0.1 checkpoint (format 1, coefficients of
powers of u, no ``poly_basis`` in its config) loads as the same network; an unknown newer format
is refused with a clear message."""

import json

import pytest
import torch

from chainzrule.checkpoint import META, load_checkpoint, save_checkpoint
from chainzrule.config import TrainConfig
from chainzrule.errors import DataError
from chainzrule.functional import poly_activation
from chainzrule.train import build_model


def _v1_checkpoint(folder, cfg):
    """Write what chainzrule 0.1 wrote: power coefficients, format_version 1, no new config keys."""
    torch.manual_seed(3)
    net = build_model(cfg.replace(poly_basis="power"), 5, 3, "classification")
    with torch.no_grad():
        for layer in net.hidden_layers:
            layer.activation.coefficients.normal_()  # arbitrary power coefficients a_k of u^k
    save_checkpoint(folder, net, cfg.replace(poly_basis="power"), in_features=5, num_classes=3, task="classification")
    meta = json.loads((folder / META).read_text())
    meta["format_version"] = 1
    for key in ("poly_basis", "coef_lr_scale", "device", "dtype", "patience"):
        meta["config"].pop(key)
    (folder / META).write_text(json.dumps(meta))
    return net


def test_v1_checkpoint_loads_as_the_same_network(tmp_path):
    cfg = TrainConfig(dataset="synthetic", hidden=(8, 8))
    old = _v1_checkpoint(tmp_path, cfg)
    net, cfg2, meta = load_checkpoint(tmp_path)
    assert cfg2.poly_basis == "power" and meta["format_version"] == 1
    x = 4 * torch.randn(20, 5)  # inside and outside [-R, R]
    torch.testing.assert_close(net(x), old(x), rtol=0, atol=0)
    # and the power coefficients are read as coefficients of u^k
    act = net.hidden_layers[0].activation
    z = torch.linspace(-5, 5, 11).unsqueeze(1).expand(11, 8)
    ref = poly_activation(z, act.coefficients.detach(), 3.0, "linear")
    torch.testing.assert_close(act(z).detach(), ref)


def test_newer_checkpoint_format_is_refused(tmp_path):
    cfg = TrainConfig(dataset="synthetic", hidden=(4,))
    save_checkpoint(tmp_path, build_model(cfg, 5, 3, "classification"), cfg, in_features=5, num_classes=3,
                    task="classification")
    meta = json.loads((tmp_path / META).read_text())
    meta["format_version"] = 99
    (tmp_path / META).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="format 99 is newer"):
        load_checkpoint(tmp_path)


def test_current_checkpoint_round_trip_keeps_the_basis(tmp_path):
    cfg = TrainConfig(dataset="synthetic", hidden=(6,), poly_basis="chebyshev")
    net = build_model(cfg, 5, 3, "classification")
    save_checkpoint(tmp_path, net, cfg, in_features=5, num_classes=3, task="classification")
    net2, cfg2, _ = load_checkpoint(tmp_path)
    x = torch.randn(7, 5)
    assert cfg2.poly_basis == "chebyshev"
    torch.testing.assert_close(net2(x), net(x), rtol=0, atol=0)


@pytest.mark.parametrize("options", [{"cv_folds": 5, "cv_fold": 2}, {"dtype": "float64"}, {"dtype": "bfloat16"}])
def test_checkpoint_reproduces_the_recorded_test_metrics(tmp_path, options):
    """save → load → evaluate gives the run's recorded test metrics exactly: a cross-validation
    run is evaluated on its fold's test rows (not the dataset's split, which holds its training
    rows), and the model is rebuilt in the run's dtype (not float32 with the weights cast in)."""
    import torch

    from chainzrule.checkpoint import checkpoint_splits, load_checkpoint, save_checkpoint
    from chainzrule.config import TrainConfig
    from chainzrule.train import evaluate, load_splits, train

    cfg = TrainConfig(dataset="synthetic", model="mlp", hidden=(16,), epochs=2, batch_size=64, **options)
    splits = load_splits(cfg)
    run = train(cfg, splits, progress=False)
    save_checkpoint(tmp_path, run.model, cfg, in_features=10, num_classes=3, task=splits.task,
                    standardization=(splits.meta["feature_mean"], splits.meta["feature_std"]))
    model, cfg2, meta = load_checkpoint(tmp_path)
    assert next(model.parameters()).dtype == getattr(torch, cfg.dtype)
    assert evaluate(model, cfg2, checkpoint_splits(cfg2, meta, progress=False))["test"] == run.result["test"]


def test_save_refuses_a_model_its_config_does_not_describe(tmp_path):
    """A checkpoint is rebuilt from its config: a model the config does not describe (another basis
    and interval, another width) or bad sizes are refused before anything is written, not saved as
    one that loads different (outputs off by ~1) or not at all."""
    from chainzrule import ChainzRuleMLP
    from chainzrule.errors import ConfigError

    torch.manual_seed(0)
    net = ChainzRuleMLP(6, [16], 3, basis="power", bound=2.0)
    cfg = TrainConfig(dataset="synthetic", model="chainzrule", hidden=(16,))  # Legendre, R = 3
    out = tmp_path / "ckpt"
    with pytest.raises(ConfigError, match=r"computes other outputs \(largest difference .*e\.g\. another poly_basis"):
        save_checkpoint(out, net, cfg, in_features=6, num_classes=3, task="classification")
    with pytest.raises(ConfigError, match=r"would not load\): size mismatch for hidden_layers\.0"):
        save_checkpoint(out, net, cfg.replace(hidden=(8,)), in_features=6, num_classes=3, task="classification")
    with pytest.raises(ConfigError, match="expected in_features to be a positive integer, got -1"):
        save_checkpoint(out, net, cfg, in_features=-1, num_classes=3, task="classification")
    with pytest.raises(ConfigError, match=r"expected task to be one of \('classification', 'ordinal'\), got 'bogus'"):
        save_checkpoint(out, net, cfg, in_features=6, num_classes=3, task="bogus")
    assert not out.exists()
    own = cfg.replace(poly_basis="power", bound=2.0)  # its own config: saved, and loads as the same network
    save_checkpoint(out, net, own, in_features=6, num_classes=3, task="classification")
    loaded, _, _ = load_checkpoint(out)
    x = torch.randn(5, 6)
    assert torch.equal(loaded(x), net.eval()(x))
