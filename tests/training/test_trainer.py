"""Behaviour of the trainer on a tiny real dataset: methods, determinism, resume, errors, early stopping, outputs."""

from __future__ import annotations

import json

import pytest
import torch

from edgeskd.errors import ModelError, TrainingError
from edgeskd.training import TrainConfig, evaluate, train

pytest.importorskip("edgeskd.selection")


def _params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("method,extra", [
    ("dual-skd", {"use_unlabelled": True}),
    ("dml", {}),
    ("classic-kd", {}),
    ("single-ws", {}),
    ("random-init", {}),
])
def test_every_method_trains_and_logs(method, extra, digits_splits, tiny_spec, lite0_teacher, fast_config, tmp_path):
    cfg = fast_config(method=method, epochs_skd=1, **extra)
    result = train(tiny_spec, digits_splits, lite0_teacher, cfg, out_dir=tmp_path, progress=False)
    assert [h["stage"] for h in result.history] == ["skd", "finetune"]
    kd_expected = method in ("dual-skd", "dml", "classic-kd")
    assert ("loss_kd" in result.history[0]) == kd_expected
    assert ("loss_b_ce" in result.history[0]) == (method == "dml")
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2
    for name in ("model.safetensors", "metrics.json", "curves.png", "confusion.png", "reliability.png"):
        assert (tmp_path / name).stat().st_size > 0
    test = result.metrics["test"]
    assert test["n"] == 30 and len(test["confusion_matrix"]) == 4
    assert set(test["per_class"]["digit0"]) >= {"sensitivity", "specificity", "auroc"}


def test_checkpoint_reloads_to_the_same_predictions(digits_splits, tiny_spec, lite0_teacher, fast_config, tmp_path):
    from edgeskd.models import load_checkpoint

    result = train(tiny_spec, digits_splits, lite0_teacher, fast_config(method="single-ws"), out_dir=tmp_path,
                   progress=False)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.labels == digits_splits.train.classes
    assert ckpt.info["method"] == "single-ws" and ckpt.info["strategies"]["a"] == "uniform+first"
    again = evaluate(ckpt.model, digits_splits.test, ckpt.preprocess)
    assert again["accuracy"] == result.metrics["test"]["accuracy"]
    assert again["confusion_matrix"] == result.metrics["test"]["confusion_matrix"]


def test_same_seed_same_metrics_other_seed_differs(digits_splits, tiny_spec, lite0_teacher, fast_config):
    cfg = fast_config(method="dual-skd", epochs_skd=1, epochs_finetune=1)
    one = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    two = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    assert one.metrics == two.metrics
    assert _params_equal(one.model, two.model)
    other = train(tiny_spec, digits_splits, lite0_teacher, cfg.replace(seed=1), progress=False)
    assert not _params_equal(one.model, other.model)


class _Kill(Exception):
    pass


def test_resume_after_a_kill_gives_the_same_result(digits_splits, tiny_spec, lite0_teacher, fast_config, tmp_path):
    cfg = fast_config(method="dual-skd", epochs_skd=2, epochs_finetune=2, restore_best=False)
    full = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)

    def kill_after_3(epoch: int, metric: float) -> None:
        if epoch == 3:  # inside the fine-tuning stage, with optimizer state to restore
            raise _Kill

    with pytest.raises(_Kill):
        train(tiny_spec, digits_splits, lite0_teacher, cfg, out_dir=tmp_path, report=kill_after_3, progress=False)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3
    resumed = train(tiny_spec, digits_splits, lite0_teacher, cfg, out_dir=tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert _params_equal(full.model, resumed.model)
    assert resumed.metrics == full.metrics
    with pytest.raises(TrainingError, match="different config"):
        train(tiny_spec, digits_splits, lite0_teacher, cfg.replace(lr=0.01), out_dir=tmp_path, resume=True,
              progress=False)


def test_nan_loss_names_step_and_term_and_keeps_checkpoint(digits_splits, tiny_spec, lite0_teacher, fast_config,
                                                           tmp_path):
    from safetensors.torch import load_file

    holder = {}

    def poison(epoch: int, metric: float) -> None:
        # after epoch 1 is saved, corrupt A's classifier so the next forward pass gives NaN logits
        with torch.no_grad():
            holder["model"].get_classifier().weight.fill_(float("nan"))

    import edgeskd.training.trainer as trainer_mod

    original = trainer_mod.Run.__init__

    def capture(self, *args, **kwargs):
        original(self, *args, **kwargs)
        holder["model"] = self.a

    trainer_mod.Run.__init__ = capture
    try:
        with pytest.raises(TrainingError) as err:
            train(tiny_spec, digits_splits, lite0_teacher, fast_config(method="dual-skd"), out_dir=tmp_path,
                  report=poison, progress=False)
    finally:
        trainer_mod.Run.__init__ = original
    message = str(err.value)
    assert "loss term 'ce'" in message and "epoch 2 batch 1" in message and "global step 3" in message
    assert "state.safetensors" in message
    saved = load_file(str(tmp_path / "state.safetensors"))
    assert all(torch.isfinite(v).all() for k, v in saved.items() if k.startswith("A/") and v.is_floating_point())


def test_label_count_and_family_mismatch_errors(digits_splits, tiny_spec, lite0_teacher, fast_config):
    from dataclasses import replace

    from edgeskd.models import create_model

    with pytest.raises(TrainingError, match="dataset has 4 classes .* head has 10 outputs"):
        train(replace(tiny_spec, num_classes=10), digits_splits, lite0_teacher, fast_config(), progress=False)
    resnet = create_model("resnet18")
    with pytest.raises(ModelError, match="teacher is a resnet model .* efficientnet model"):
        train(tiny_spec, digits_splits, resnet, fast_config(), progress=False)


def test_early_stopping_and_report_hook(digits_splits, tiny_spec, lite0_teacher, fast_config):
    seen = []
    # lr tiny -> the val metric cannot improve. patience 1: stage 1 stops after epoch 2 (epoch 1 set the best), the
    # fine-tuning stage after its first epoch (no better than stage 1's best), which ends the run
    cfg = fast_config(method="single-ws", epochs_skd=4, epochs_finetune=4, lr=1e-12, patience=1)
    result = train(tiny_spec, digits_splits, lite0_teacher, cfg, report=lambda e, m: seen.append((e, m)),
                   progress=False)
    assert result.stopped_early
    assert [h["stage"] for h in result.history] == ["skd", "skd", "finetune"]
    assert [e for e, _ in seen] == [1, 2, 5]
    assert all(0.0 <= m <= 1.0 for _, m in seen)


def test_resume_needs_a_state(digits_splits, tiny_spec, lite0_teacher, fast_config, tmp_path):
    with pytest.raises(TrainingError, match="no training state"):
        train(tiny_spec, digits_splits, lite0_teacher, fast_config(), out_dir=tmp_path, resume=True, progress=False)


def test_zero_head_makes_first_predictions_uniform(digits_splits, tiny_spec, lite0_teacher, fast_config):
    from edgeskd.data import to_tensors
    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.training.methods import get_method
    from edgeskd.training.methods.base import Run
    from edgeskd.training.trainer import _tensors

    pre = PreprocessSpec.for_model(lite0_teacher, size=32)
    d = _tensors(digits_splits.train, pre)
    run = Run(tiny_spec, lite0_teacher, fast_config(method="dual-skd", head_init="zero"), get_method("dual-skd"), d, d,
              None, None)
    x, _ = to_tensors(digits_splits.val, pre)
    for model in (run.a.eval(), run.b.eval()):
        probs = torch.softmax(model(x[:8]), dim=1)
        assert torch.allclose(probs, torch.full_like(probs, 0.25))
    # the backbone still carries the selected teacher weights (not zeroed)
    assert any(v.abs().sum() > 0 for k, v in run.a.state_dict().items() if k.startswith("conv_stem"))
