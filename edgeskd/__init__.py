"""edgeskd: large pretrained vision model -> small, fast, verified classifier for a bedside device.

Stages live in their own subpackages and data flows one way through them:
data -> models/selection -> training -> export -> latency -> search (which calls the others).
The flat public surface below is loaded lazily, so `import edgeskd` (and `edgeskd --help`) stays fast.

    import edgeskd
    data = edgeskd.load_dataset("chest-xray-samples")
    teacher = edgeskd.load_teacher("tf_efficientnet_lite0")
    student = edgeskd.build_student(edgeskd.StudentSpec("tf_efficientnet_lite0", depth=0.5, width=0.5, resolution=64,
                                                        num_classes=2))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, tuple[str, ...]] = {
    "edgeskd.errors": ("EdgeskdError", "DataError", "ModelError", "SelectionError", "TrainingError", "LatencyError",
                       "ExportError", "SearchError", "MissingDependency", "OutputError", "RuntimeAdapterError"),
    "edgeskd.data": ("load_dataset", "ImageSet", "DatasetSplits", "BUILTIN_DATASETS", "read_image", "read_dicom",
                     "to_tensors"),
    "edgeskd.data.preprocess": ("PreprocessSpec", "preprocess"),
    "edgeskd.models": ("StudentSpec", "build_student", "load_teacher", "profile_model", "family_of",
                       "list_families", "Checkpoint", "save_checkpoint", "load_checkpoint"),
    "edgeskd.selection": ("select_weights", "apply_selection", "select_dual", "Selection", "DualSelection",
                          "parse_strategy"),
    "edgeskd.training": ("TrainConfig", "TrainResult", "train", "evaluate", "compare_methods"),
    "edgeskd.export": ("export_bundle", "verify_bundle", "load_manifest", "FORMATS", "BundleReport", "VerifyReport"),
    "edgeskd.export.onnx": ("export_onnx",),
    "edgeskd.latency": ("Target", "get_target", "list_targets", "Measurement", "measure", "measure_model",
                        "LatencyCache", "check_budget", "compare"),
    "edgeskd.runtimes": ("get_adapter", "list_adapters", "RuntimeAdapter", "Runner", "predict"),
    "edgeskd.search": ("run_search", "SearchConfig", "SearchSpace", "load_space"),
    "edgeskd.search.deployment": ("Deployment", "DeploySpace", "filter_deployments"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'edgeskd' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
