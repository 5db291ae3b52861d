"""The method registry: built-in methods found by file name, a new method is one class, options are checked."""

from __future__ import annotations

import pytest
import torch

from edgeskd.errors import TrainingError

pytest.importorskip("edgeskd.selection")


def test_builtin_methods_are_listed_without_importing_them():
    from edgeskd.training import METHODS
    from edgeskd.training.methods import builtin_methods, get_method

    assert builtin_methods() == METHODS
    assert set(METHODS) == {"dual-skd", "single-ws", "random-init", "classic-kd", "dml", "ssl-skd"}
    assert METHODS[0] == "dual-skd"
    for name in METHODS:
        method = get_method(name)
        assert method.name == name and method.summary
    assert get_method("classic-kd").needs_kd_teacher and not get_method("dml").needs_kd_teacher
    assert get_method("dml").trains_b("skd") and not get_method("dml").trains_b("finetune")
    assert not get_method("dual-skd").trains_b("skd")


def test_unknown_method_and_options_are_one_line_errors():
    from edgeskd.training import TrainConfig

    with pytest.raises(TrainingError, match="unknown training method 'nope'; expected one of dual-skd"):
        TrainConfig(method="nope")
    with pytest.raises(TrainingError, match=r"method 'dml' has no option\(s\) \['alpha'\]; its options: none"):
        TrainConfig(method="dml", method_options={"alpha": 1})


def _register_scaled_ce():
    """A new method in a few lines: CE on A scaled by an option (registered from outside edgeskd)."""
    from edgeskd.training.methods import get_method
    from edgeskd.training.methods.base import Method, register_method

    @register_method
    class ScaledCE(Method):
        name = "test-scaled-ce"
        summary = "scale * CE(A(x1), y), for the registry tests"
        options = {"scale": 1.0}

        def losses(self, run, stage, batch):
            terms_a, terms_b = super().losses(run, stage, batch)
            return {"ce": terms_a["ce"] * run.options["scale"]}, terms_b

    return get_method("test-scaled-ce")


def test_a_registered_method_trains_compares_and_takes_options(digits_splits, tiny_spec, lite0_teacher,
                                                               fast_config, capsys):
    from edgeskd.training import compare_methods, train
    from edgeskd.training.methods import available_methods

    _register_scaled_ce()
    assert "test-scaled-ce" in available_methods()
    with pytest.raises(TrainingError, match="option scale='big' of 'test-scaled-ce': expected a float"):
        fast_config(method="test-scaled-ce", method_options={"scale": "big"})
    with pytest.raises(TrainingError, match="option scale=nan of 'test-scaled-ce': expected a finite number"):
        fast_config(method="test-scaled-ce", method_options={"scale": float("nan")})
    one = train(tiny_spec, digits_splits, lite0_teacher, fast_config(method="test-scaled-ce", epochs_skd=1),
                progress=False)
    half = train(tiny_spec, digits_splits, lite0_teacher,
                 fast_config(method="test-scaled-ce", epochs_skd=1, method_options={"scale": 0.5}), progress=False)
    # scale 1 is random-init's loss: the same numbers; scale 0.5 changes the logged CE
    ref = train(tiny_spec, digits_splits, lite0_teacher, fast_config(method="random-init", epochs_skd=1),
                progress=False)
    assert one.history[0]["loss_ce"] == ref.history[0]["loss_ce"]
    assert all(torch.equal(a, b) for a, b in zip(one.model.state_dict().values(), ref.model.state_dict().values()))
    assert half.history[0]["loss_ce"] != one.history[0]["loss_ce"]
    assert half.info["config"]["method_options"] == {"scale": 0.5}
    rows = compare_methods(["random-init", "test-scaled-ce"], tiny_spec, digits_splits, lite0_teacher,
                           fast_config(epochs_skd=1), [0], progress=False)
    assert [r["method"] for r in rows] == ["random-init", "test-scaled-ce"]
    assert rows[0]["test"] == rows[1]["test"]


def test_cli_method_option_parsing():
    from edgeskd.cli.train import parse_options

    assert parse_options(["scale=0.5", "name=abc", "flag=true"]) == {"scale": 0.5, "name": "abc", "flag": True}
    with pytest.raises(TrainingError, match="expected KEY=VALUE"):
        parse_options(["scale"])


def test_cli_method_option_reaches_the_config_and_is_checked():
    from edgeskd.cli import build_parser
    from edgeskd.cli.train import build_config

    args = build_parser().parse_args(["train", "--data", "x", "--teacher", "tf_efficientnet_lite0", "--method", "dml",
                                      "--method-option", "alpha=1"])
    with pytest.raises(TrainingError, match=r"method 'dml' has no option\(s\) \['alpha'\]"):
        build_config(args)
    args = build_parser().parse_args(["train", "--data", "x", "--teacher", "tf_efficientnet_lite0", "--device", "cpu",
                                      "--channels-last", "off", "--deterministic"])
    config = build_config(args)
    assert (config.device, config.channels_last, config.deterministic) == ("cpu", "off", True)
