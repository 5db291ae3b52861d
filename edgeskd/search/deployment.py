"""Deployment as a search dimension: which runtime runs the student at which precision.

A space's `deploy:` section lists runtimes and precisions:

    deploy:
      runtimes: [ort, openvino]       # ort, openvino, tensorrt (short or full runtime names)
      precisions: [fp32, int8]        # fp32, bf16, fp16, int8
      calibration_images: 64          # int8: images drawn from the TRAINING split only (default 64)

At start the search keeps only the (runtime, precision) combinations this device supports, as the runtime adapters
report them (OpenVINO's OPTIMIZATION_CAPABILITIES, ONNX Runtime's providers, TensorRT's builder), and prints every
combination kept or dropped with the reason. A space without the section searches the configured target alone.

After training, a trial is judged on the artifact: the validation split, preprocessed exactly as the bundle (and the
C runtime) does, runs through the exported model built for the trial's runtime and precision (`evaluate_artifact`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd.errors import SearchError

DEFAULT_CALIBRATION_IMAGES = 64
DEPLOY_KEYS = {"runtimes", "precisions", "calibration_images"}
# runtime -> the built-in latency target that times it (threads and statistic come from the configured target)
TARGET_OF = {"onnxruntime": "ort-cpu", "openvino": "openvino-cpu", "tensorrt": "tensorrt"}
SEPARATOR = ":"


@dataclass(frozen=True)
class Deployment:
    """One (runtime, precision) choice; `label` ("openvino:int8") is its Optuna categorical value."""

    runtime: str        # canonical runtime name (onnxruntime, openvino, tensorrt)
    precision: str

    @property
    def label(self) -> str:
        from edgeskd.runtimes import get_adapter

        return f"{get_adapter(self.runtime).short}{SEPARATOR}{self.precision}"

    @classmethod
    def parse(cls, label: str) -> Deployment:
        from edgeskd.runtimes import get_adapter

        runtime, sep, precision = str(label).partition(SEPARATOR)
        if not sep or not precision:
            raise SearchError(f"deployment {label!r} must look like RUNTIME:PRECISION (for example openvino:int8)")
        return cls(get_adapter(runtime).name, precision.strip().lower())

    def target_name(self) -> str:
        base = TARGET_OF.get(self.runtime)
        if base is None:
            raise SearchError(f"runtime {self.runtime} has no latency target; expected one of {sorted(TARGET_OF)}")
        return f"{base}:{self.precision}"


@dataclass(frozen=True)
class DeploySpace:
    runtimes: tuple[str, ...]            # canonical runtime names, in the order written
    precisions: tuple[str, ...]
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES

    def combinations(self) -> list[Deployment]:
        return [Deployment(r, p) for r in self.runtimes for p in self.precisions]

    def to_dict(self) -> dict[str, Any]:
        return {"runtimes": list(self.runtimes), "precisions": list(self.precisions),
                "calibration_images": self.calibration_images}


def parse_deploy(raw: Any, fail: Callable[[str, str], SearchError]) -> DeploySpace:
    """The `deploy:` section of a space file (errors name the key)."""
    from edgeskd.errors import RuntimeAdapterError
    from edgeskd.runtimes import PRECISIONS, get_adapter

    if not isinstance(raw, dict):
        raise fail("deploy", f"expected a mapping with runtimes and precisions, got {type(raw).__name__}")
    unknown = set(raw) - DEPLOY_KEYS
    if unknown:
        raise fail(f"deploy.{sorted(unknown)[0]}", f"unknown key; expected some of {sorted(DEPLOY_KEYS)}")
    lists = {}
    for key in ("runtimes", "precisions"):
        value = raw.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise fail(f"deploy.{key}", f"expected a non-empty list of names, got {value!r}")
        lists[key] = value
    runtimes = []
    for name in lists["runtimes"]:
        try:
            runtime = get_adapter(name).name
        except RuntimeAdapterError as exc:
            raise fail("deploy.runtimes", str(exc)) from None
        if runtime not in TARGET_OF:
            raise fail("deploy.runtimes", f"{name!r} cannot be a deployment (expected some of ort, openvino, tensorrt)")
        if runtime not in runtimes:
            runtimes.append(runtime)
    precisions = []
    for name in lists["precisions"]:
        if name.lower() not in PRECISIONS:
            raise fail("deploy.precisions", f"unknown precision {name!r}; expected some of {list(PRECISIONS)}")
        if name.lower() not in precisions:
            precisions.append(name.lower())
    n = raw.get("calibration_images", DEFAULT_CALIBRATION_IMAGES)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise fail("deploy.calibration_images", f"expected an integer >= 1, got {n!r}")
    return DeploySpace(tuple(runtimes), tuple(precisions), n)


Capabilities = Callable[[str], dict[str, str]]  # runtime -> {precision: "" if supported else the reason}


def device_capabilities(runtime: str) -> dict[str, str]:
    """What the runtime reports about this device (unavailable runtimes: every precision with that reason)."""
    from edgeskd.runtimes import get_adapter

    return get_adapter(runtime).supported()


def filter_deployments(deploy: DeploySpace, capabilities: Capabilities = device_capabilities
                       ) -> tuple[list[Deployment], list[tuple[Deployment, str]]]:
    """(kept, dropped with reasons): every combination of the section, judged by `capabilities` (injectable so a
    test can stand in for a device with other capabilities)."""
    kept: list[Deployment] = []
    dropped: list[tuple[Deployment, str]] = []
    reports: dict[str, dict[str, str]] = {}
    for d in deploy.combinations():
        if d.runtime not in reports:
            reports[d.runtime] = capabilities(d.runtime)
        reason = reports[d.runtime].get(d.precision, f"{d.runtime} reports nothing about {d.precision}")
        if reason:
            dropped.append((d, reason))
        else:
            kept.append(d)
    return kept, dropped


def describe_filter(kept: list[Deployment], dropped: list[tuple[Deployment, str]]) -> list[str]:
    lines = [f"deployment kept:    {d.label}" for d in kept]
    lines += [f"deployment dropped: {d.label} ({reason})" for d, reason in dropped]
    return lines


def deployment_target(deployment: Deployment, base: Any) -> Any:
    """The latency target of a deployment, with the configured target's threads, statistic and budget."""
    from dataclasses import replace

    from edgeskd.latency import get_target

    target = get_target(deployment.target_name(), threads=getattr(base, "threads", 1))
    return replace(target, statistic=getattr(base, "statistic", target.statistic),
                   budget_ms=getattr(base, "budget_ms", None))


def calibration_set(train_images: Any, preprocess: Any, n: int, seed: int) -> np.ndarray:
    """`n` images drawn (without replacement, seeded) from the TRAINING split, preprocessed as in training and
    export: the only images int8 calibration ever sees."""
    from edgeskd.data import to_tensors

    total = len(train_images)
    if total == 0:
        raise SearchError("int8 calibration needs training images; the training split is empty")
    idx = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    x, _ = to_tensors(train_images.subset(idx), preprocess)
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def calibration_hash(calibration: np.ndarray) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(np.ascontiguousarray(calibration, dtype=np.float32).tobytes()).hexdigest()


def artifact_logits(model: Any, images: np.ndarray, deployment: Deployment, *, calibration: np.ndarray | None,
                    threads: int = 1, workdir: str | Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Export `model` to ONNX, build the deployment's artifact (int8: calibrated on `calibration`), run `images`
    (already preprocessed, N x C x S x S) through it; returns the logits and what the runtime reported."""
    from edgeskd.export.onnx import export_onnx
    from edgeskd.runtimes import get_adapter, predict

    adapter = get_adapter(deployment.runtime)
    with tempfile.TemporaryDirectory(prefix="edgeskd-artifact-", dir=workdir) as tmp:
        onnx_path = export_onnx(model.eval(), Path(tmp, "model.onnx"), resolution=int(images.shape[-1]),
                                in_chans=int(images.shape[1]))
        path = adapter.build(onnx_path, Path(tmp, adapter.artifact_name(deployment.precision)),
                             deployment.precision, calibration=calibration)
        runner = adapter.open(path, precision=deployment.precision, threads=threads, batch=min(32, len(images)))
        logits = predict(runner, images)
        return logits, {"provider": runner.provider, "precision": runner.precision, **runner.reported}


def evaluate_artifact(model: Any, images: Any, preprocess: Any, deployment: Deployment, *,
                      calibration: np.ndarray | None, threads: int = 1) -> dict[str, Any]:
    """The classification metrics of the deployed artifact on an ImageSet (the trial's objective comes from here),
    with the top-1 agreement against the PyTorch model on the same images."""
    import torch

    from edgeskd.data import to_tensors
    from edgeskd.training.metrics import classification_metrics

    x, y = to_tensors(images, preprocess)
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    logits, reported = artifact_logits(model, x, deployment, calibration=calibration, threads=threads)
    with torch.no_grad():
        reference = model.eval()(torch.from_numpy(x)).numpy()
    multilabel = bool(images.multilabel)
    t = torch.from_numpy(logits.astype(np.float64))
    probs = (torch.sigmoid(t) if multilabel else torch.softmax(t, dim=1)).numpy()
    metrics = classification_metrics(probs, np.asarray(y), list(images.classes), multilabel)
    metrics["top1_agreement_vs_pytorch"] = float((logits.argmax(1) == reference.argmax(1)).mean())
    metrics["runtime_reported"] = {k: v for k, v in reported.items() if isinstance(v, (str, int, float, bool))}
    return metrics
