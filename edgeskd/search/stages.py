"""The only place the search touches the other stages (data, models, latency, training, export).

The search loop calls these through a `Stages` object, so a test about the search machinery itself (resume,
workers, storage) can inject fast fakes, while everything else (and the end-to-end test) uses `real_stages()`.
Workers started in other processes find their stages by an import path "module:function" (see `load_stages`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeskd.errors import SearchError


@dataclass(frozen=True)
class Stages:
    load_data: Callable[..., Any]          # (source, *, seed, **SearchConfig.data_options()) -> DatasetSplits
    load_teacher: Callable[..., Any]       # (name, weights, *, teacher_num_classes) -> nn.Module
    build_student: Callable[..., Any]      # (StudentSpec, teacher) -> nn.Module (untrained)
    profile: Callable[..., Any]            # (model, resolution) -> ModelProfile (parameters, macs)
    get_target: Callable[..., Any]         # (name) -> Target
    latency_cache: Callable[..., Any]      # (path) -> LatencyCache
    measure: Callable[..., Any]            # (model, resolution, target, cache, *, calibration=None (int8),
    #                                        settle=None (latency map: edgeskd.latency.check_settle)) -> Measurement
    check_budget: Callable[..., Any]       # (measurement, budget_ms, statistic, target) -> (ok, reason)
    train_config: Callable[..., Any]       # (dict) -> TrainConfig
    train: Callable[..., Any]              # (spec, data, teacher, config, *, out_dir, report, resume, progress)
    export_bundle: Callable[..., Any]      # (checkpoint, out_dir, *, parity_images, parity_labels, latency,
    #                                        primary="runtime:precision", calibration, primary_accuracy)
    # (train result, data, Deployment, calibration, threads) -> validation metrics of the deployed artifact;
    # None (test fakes): trials are judged by the training's own (PyTorch) validation metric
    evaluate_artifact: Callable[..., Any] | None = None


DEFAULT = "edgeskd.search.stages:real_stages"


def load_stages(path: str = DEFAULT) -> Stages:
    """Import "module:function" and call it; the function returns a Stages."""
    module_name, _, attr = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SearchError(f"cannot load search stages {path!r}: {exc}") from exc
    stages = factory()
    if not isinstance(stages, Stages):
        raise SearchError(f"{path} returned {type(stages).__name__}, expected edgeskd.search.stages.Stages")
    return stages


# --- the real stages ------------------------------------------------------------------------------------------------

def _measure(model, resolution: int, target, cache, calibration=None, settle=None):
    from edgeskd.latency import measure_model

    return measure_model(model, resolution, target, cache=cache, in_chans=3, calibration=calibration, settle=settle)


def _evaluate_artifact(result, data, deployment, calibration, threads: int = 1):
    from edgeskd.search.deployment import evaluate_artifact

    return evaluate_artifact(result.model, data.val, result.preprocess, deployment, calibration=calibration,
                             threads=threads)


def _train_config(values: dict[str, Any]):
    from edgeskd.training import TrainConfig

    return TrainConfig.from_dict(values)


def _train(spec, data, teacher, config, *, out_dir: Path | None, report, resume: bool, progress: bool):
    from edgeskd.training import train

    return train(spec, data, teacher, config, out_dir=out_dir, report=report, resume=resume, progress=progress)


def _export_bundle(checkpoint, out_dir, *, parity_images, parity_labels, latency, primary=None, calibration=None,
                   primary_accuracy=None):
    from edgeskd.export import export_bundle

    # overwrite: a resumed search re-exports its (possibly re-trained) winner into the same run folder
    return export_bundle(checkpoint, out_dir, parity_images=parity_images, parity_labels=parity_labels,
                         latency=latency, overwrite=True, primary=primary, calibration=calibration,
                         primary_accuracy=primary_accuracy)


def _load_data(source: str, *, seed: int = 0, **options):
    from edgeskd.data import load_dataset

    return load_dataset(source, seed=seed, **options)  # options: SearchConfig.data_options()


def _load_teacher(name: str, weights: str | None, *, teacher_num_classes: int | None = None):
    from edgeskd.models import load_teacher

    return load_teacher(name, weights, teacher_num_classes=teacher_num_classes)


def _get_target(name: str):
    from edgeskd.latency import get_target

    return get_target(name)


def _latency_cache(path: Path):
    from edgeskd.latency import LatencyCache

    return LatencyCache(path)


def _check_budget(measurement, budget_ms: float, statistic: str, target):
    from edgeskd.latency import check_budget

    # with the target: a number measured elsewhere (another runtime, precision, thread count) is refused
    return check_budget(measurement, budget_ms, statistic=statistic, target=target)


def real_stages() -> Stages:
    from edgeskd.models import build_student, profile_model

    return Stages(load_data=_load_data, load_teacher=_load_teacher, build_student=build_student,
                  profile=profile_model, get_target=_get_target, latency_cache=_latency_cache, measure=_measure,
                  check_budget=_check_budget, train_config=_train_config, train=_train,
                  export_bundle=_export_bundle, evaluate_artifact=_evaluate_artifact)
