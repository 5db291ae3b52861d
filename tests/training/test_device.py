"""Devices, precision, memory format, data placement and their errors (issue 13, requirements 2 and 4).

CUDA paths run only where torch sees a GPU; elsewhere those tests skip with the reason.
"""

from __future__ import annotations

import json

import pytest
import torch

from edgeskd.errors import TrainingError

pytest.importorskip("edgeskd.selection")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch here")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA; the no-CUDA error is moot")


@no_cuda
def test_cuda_without_cuda_is_a_one_line_error_naming_what_torch_sees():
    from edgeskd.training.device import resolve_device

    for name in ("cuda", "cuda:1"):
        with pytest.raises(TrainingError) as err:
            resolve_device(name)
        message = str(err.value)
        assert "\n" not in message and f"--device {name}: torch {torch.__version__} sees no CUDA device" in message
        assert ("CPU-only build" in message) == (torch.version.cuda is None)
    assert resolve_device("auto") == torch.device("cpu")


def test_bad_device_names_and_precisions():
    from edgeskd.training import TrainConfig
    from edgeskd.training.device import Accelerator, resolve_device

    with pytest.raises(TrainingError, match="expected cuda:N with N a GPU number"):
        resolve_device("cuda:x")
    with pytest.raises(TrainingError, match="device must be auto, cpu, cuda or cuda:N; got 'tpu'"):
        TrainConfig(device="tpu")
    with pytest.raises(TrainingError, match="precision must be one of auto, fp32, bf16, fp16"):
        TrainConfig(precision="int8")
    with pytest.raises(TrainingError, match="channels_last must be one of auto, on, off"):
        TrainConfig(channels_last="yes")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="fp16 needs a CUDA device"):
            Accelerator.create("cpu", "fp16", False)
    cpu = Accelerator.create("cpu", "auto", False)
    assert cpu.amp_dtype is None and cpu.new_scaler() is None  # CPU default stays fp32


@no_cuda
def test_cli_device_cuda_fails_before_loading_anything(capsys):
    from edgeskd.cli import main

    code = main(["train", "--data", "no-such-folder", "--teacher", "tf_efficientnet_lite0", "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "sees no CUDA device" in err[0]


def test_channels_last_probe_is_cached(tmp_path, monkeypatch, tiny_spec):
    import edgeskd.training.device as device
    from edgeskd.models import build_student

    monkeypatch.setenv("EDGESKD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_PROBED", {})
    acc = device.Accelerator.create("cpu", "fp32", False)
    model = build_student(tiny_spec)
    rng_before = torch.random.get_rng_state()
    use, how = device.decide_channels_last("auto", model, "tiny", 32, 3, 8, acc, repeats=1)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the probe leaves the run's random stream alone
    assert how["decided_by"] == "probe" and how["channels_last"] == use
    assert how["seconds_contiguous"] > 0 and how["seconds_channels_last"] > 0
    saved = json.loads((tmp_path / "memory_format.json").read_text())
    assert saved[how["key"]]["channels_last"] == use
    # a new process (empty memory) reads the file and does not measure again
    monkeypatch.setattr(device, "_PROBED", {})
    monkeypatch.setattr(device, "_probe", lambda *a, **k: pytest.fail("probed again despite the cache"))
    assert device.decide_channels_last("auto", model, "tiny", 32, 3, 8, acc)[0] == use
    assert device.decide_channels_last("on", model, "tiny", 32, 3, 8, acc) == (True, {"decided_by": "config"})
    det = device.Accelerator.create("cpu", "fp32", True)
    assert device.decide_channels_last("auto", model, "tiny", 32, 3, 8, det)[0] is False


def test_channels_last_run_is_deterministic_resumable_and_returns_a_plain_model(digits_splits, tiny_spec,
                                                                               lite0_teacher, fast_config, tmp_path):
    from edgeskd.training import train

    cfg = fast_config(method="dual-skd", epochs_skd=1, epochs_finetune=2, channels_last="on", restore_best=False)
    one = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    two = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    assert one.info["runtime"]["channels_last"] is True and one.info["runtime"]["device"] == "cpu"
    assert one.metrics == two.metrics
    assert all(torch.equal(a, b) for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values()))
    assert all(v.is_contiguous() for v in one.model.state_dict().values())

    def kill(epoch, metric):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_spec, digits_splits, lite0_teacher, cfg, out_dir=tmp_path, report=kill, progress=False)
    resumed = train(tiny_spec, digits_splits, lite0_teacher, cfg, out_dir=tmp_path, resume=True, progress=False)
    assert resumed.metrics == one.metrics
    assert resumed.info["runtime"]["probe"] == {"decided_by": "resumed run"}


def _poison_head(monkeypatch) -> None:
    """Every run's model A starts with a NaN classifier: the first step's loss is not finite."""
    import edgeskd.training.trainer as trainer_mod

    original = trainer_mod.Run.__init__

    def poisoned(self, *args, **kwargs):
        original(self, *args, **kwargs)
        with torch.no_grad():
            self.a.get_classifier().weight.fill_(float("nan"))

    monkeypatch.setattr(trainer_mod.Run, "__init__", poisoned)


def test_bf16_autocast_on_cpu_trains_and_nan_names_the_precision(digits_splits, tiny_spec, lite0_teacher,
                                                                 fast_config, monkeypatch):
    from edgeskd.training import train

    cfg = fast_config(method="single-ws", epochs_skd=1, epochs_finetune=0, precision="bf16", channels_last="off")
    result = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    assert result.info["runtime"]["precision"] == "bf16"
    assert all(torch.isfinite(torch.tensor(h["loss_ce"])) for h in result.history)

    _poison_head(monkeypatch)
    with pytest.raises(TrainingError) as err:
        train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    assert "global step 1" in str(err.value) and "under bf16 autocast on cpu" in str(err.value)
    assert "try --precision fp32" in str(err.value)


def test_out_of_memory_names_the_batch_size_and_a_smaller_one(digits_splits, tiny_spec, lite0_teacher, fast_config,
                                                              monkeypatch):
    from edgeskd.training import get_method, train

    method = get_method("random-init")

    def boom(run, stage, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(method, "losses", boom)
    with pytest.raises(TrainingError) as err:
        train(tiny_spec, digits_splits, lite0_teacher, fast_config(method="random-init", batch_size=32),
              progress=False)
    message = str(err.value)
    assert "out of memory on cpu with batch size 32 at stage 'skd' epoch 1 batch 1" in message
    assert "try --batch-size 16" in message


def test_deterministic_switch_is_restored(digits_splits, tiny_spec, lite0_teacher, fast_config):
    from edgeskd.training import train

    before = torch.are_deterministic_algorithms_enabled()
    result = train(tiny_spec, digits_splits, lite0_teacher,
                   fast_config(method="random-init", epochs_skd=1, epochs_finetune=0, deterministic=True),
                   progress=False)
    assert result.info["runtime"]["deterministic"] is True
    assert result.info["runtime"]["channels_last"] is False  # no timing-dependent choice under --deterministic
    assert torch.are_deterministic_algorithms_enabled() == before


def test_preprocessed_sets_are_reused_across_runs(digits_splits, lite0_teacher):
    from edgeskd.data.preprocess import PreprocessSpec
    from edgeskd.training.trainer import _tensors

    pre = PreprocessSpec.for_model(lite0_teacher, size=32)
    assert _tensors(digits_splits.train, pre) is _tensors(digits_splits.train, pre)
    other = PreprocessSpec.for_model(lite0_teacher, size=40)
    assert _tensors(digits_splits.train, other).x.shape[-1] == 40


@needs_cuda
@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_cuda_training_runs_and_matches_itself(precision, digits_splits, tiny_spec, lite0_teacher, fast_config):
    from edgeskd.training import train

    cfg = fast_config(method="dual-skd", epochs_skd=1, epochs_finetune=1, device="cuda", precision=precision,
                      deterministic=True)
    one = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    two = train(tiny_spec, digits_splits, lite0_teacher, cfg, progress=False)
    assert one.info["runtime"]["device"].startswith("cuda")
    assert next(one.model.parameters()).device.type == "cpu"
    assert one.metrics == two.metrics  # --deterministic on one GPU: bit-identical reruns


@needs_cuda
def test_cuda_classic_kd_fine_tunes_its_teacher_on_the_gpu(digits_splits, tiny_spec, lite0_teacher, fast_config):
    from edgeskd.training import train

    result = train(tiny_spec, digits_splits, lite0_teacher, fast_config(method="classic-kd", device="cuda"),
                   progress=False)
    assert 0.0 <= result.metrics["test"]["accuracy"] <= 1.0


@needs_cuda
def test_cuda_fp16_nan_names_the_step_and_the_scaler(digits_splits, tiny_spec, lite0_teacher, fast_config,
                                                      monkeypatch):
    from edgeskd.training import train

    _poison_head(monkeypatch)
    with pytest.raises(TrainingError) as err:
        train(tiny_spec, digits_splits, lite0_teacher,
              fast_config(method="single-ws", device="cuda", precision="fp16"), progress=False)
    message = str(err.value)
    assert "global step 1" in message and "under fp16 autocast on cuda" in message
    assert "gradient scaler: scale 65536" in message and "growth tracker 0" in message
