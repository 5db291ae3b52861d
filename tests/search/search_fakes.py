"""Fast stand-ins for the stages, ONLY for tests about the search machinery (storage, resume, workers, reports).

Latency is a deterministic function of the candidate's shape, "training" sleeps a little and reports a metric that
grows with size, and every call is appended to a log file (EDGESKD_FAKE_LOG) so tests can check, for example, that
no over-budget candidate was ever trained. The end-to-end test uses the real stages.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from edgeskd.search.stages import Stages

CLASSES = ["a", "b", "c"]


def _log(event: str, **data: Any) -> None:
    path = os.environ.get("EDGESKD_FAKE_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"event": event, "pid": os.getpid(), **data}) + "\n")


def fake_latency(depth: float, width: float, resolution: int) -> float:
    return round(40.0 * depth * width * (resolution / 64) ** 2, 3)


@dataclass
class FakeMeasurement:
    stats: dict[str, float]
    samples_ms: list[float] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=lambda: {"runtime": "fake"})
    info: dict[str, Any] = field(default_factory=dict)


class _Part(SimpleNamespace):
    def __len__(self) -> int:
        return len(self.labels)


def _load_data(source: str, *, seed: int = 0, train_fraction: float = 1.0, **options):
    train = _Part(images=[np.zeros((8, 8), np.uint8)] * 6, labels=np.arange(6) % 3, classes=CLASSES)
    test = _Part(images=[np.zeros((8, 8), np.uint8)] * 3, labels=np.arange(3), classes=CLASSES)
    return SimpleNamespace(train=train, val=test, test=test, unlabelled=None, name=source)


def _measure(model, resolution, target, cache, **options):
    from edgeskd.latency.measurement import settled_verdict

    ms = fake_latency(model.depth, model.width, resolution)
    settle = options.get("settle")
    _log("measure", ms=ms, shape=[model.depth, model.width, resolution], settle=settle)
    # the real worker's decision, on the fake's exact latency
    info = {"settled_early": settled_verdict([ms], settle)} if settle else {}
    return FakeMeasurement({"p50": ms * 0.9, "p90": ms * 0.95, "p95": ms, "p99": ms * 1.1, "mean": ms, "n": 10},
                           info=info)


def _check_budget(m, budget_ms, statistic, target):
    value = m.stats[statistic]
    return (value <= budget_ms, f"{statistic} {value:.3f} ms {'<=' if value <= budget_ms else '>'} budget {budget_ms}")


def _wait_for_trainers(count: int, limit_s: float = 300.0) -> None:
    """Block until `count` processes have started training (EDGESKD_FAKE_WAIT_FOR_TRAINERS), so a test about
    parallel workers does not depend on how fast each worker process starts on a loaded machine."""
    path, end = os.environ["EDGESKD_FAKE_LOG"], time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            pids = {e["pid"] for e in read_log(Path(path)) if e["event"] == "train"}
        except ValueError:  # a line being appended by another process right now; read again
            pids = set()
        if len(pids) >= count:
            return
        time.sleep(0.05)  # past the limit the test's own assertion on the trainers reports it


def _train(spec, data, teacher, config, *, out_dir, report, resume, progress):
    _log("train", depth=spec.depth, width=spec.width, resolution=spec.resolution, out_dir=str(out_dir))
    if os.environ.get("EDGESKD_FAKE_WAIT_FOR_TRAINERS"):
        _wait_for_trainers(int(os.environ["EDGESKD_FAKE_WAIT_FOR_TRAINERS"]))
    step_s = float(os.environ.get("EDGESKD_FAKE_STEP_S", "0.02"))
    epochs = config["epochs_skd"] + config["epochs_finetune"]
    quality = 0.3 + 0.5 * spec.depth * spec.width + 0.001 * spec.resolution + 0.02 * config["lr"] * 100
    value = 0.0
    for epoch in range(1, epochs + 1):
        time.sleep(step_s)
        value = min(1.0, quality * epoch / epochs)
        if report is not None:
            report(epoch, value)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    ckpt = Path(out_dir) / "model.safetensors"
    ckpt.write_text("fake checkpoint")
    metrics = {"val": {"balanced_accuracy": value, "accuracy": value},
               "test": {"n": 3, "accuracy": value, "balanced_accuracy": value,
                        "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}
    return SimpleNamespace(model=SimpleNamespace(depth=spec.depth, width=spec.width), metrics=metrics, history=[],
                           checkpoint=ckpt, seconds=step_s * epochs)


def _export_bundle(checkpoint, out_dir, *, parity_images, parity_labels, latency, **deployment):
    _log("export", checkpoint=str(checkpoint), primary=deployment.get("primary"))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "manifest.json").write_text(json.dumps({"latency": latency.stats}))
    return {"files": ["manifest.json"]}


def _train_config(values: dict[str, Any]) -> dict[str, Any]:
    from edgeskd.errors import TrainingError

    if "bogus" in values:
        raise TrainingError("unknown training config keys ['bogus']")
    return dict(values)


def fake_stages() -> Stages:
    return Stages(
        load_data=_load_data,
        load_teacher=lambda name, weights, teacher_num_classes=None: SimpleNamespace(name=name),
        build_student=lambda spec, teacher: SimpleNamespace(depth=spec.depth, width=spec.width),
        profile=lambda model, resolution: SimpleNamespace(parameters=int(1e5 * model.depth * model.width),
                                                          macs=int(1e6 * model.depth * model.width * resolution)),
        get_target=lambda name: SimpleNamespace(name=name),
        latency_cache=lambda path: None,
        measure=_measure, check_budget=_check_budget, train_config=_train_config, train=_train,
        export_bundle=_export_bundle)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
