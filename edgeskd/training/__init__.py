"""Training: dual weight selection + self-knowledge distillation + fine-tuning, the baselines, and evaluation.

Public surface: TrainConfig, METHODS, train, TrainResult, evaluate, compare_methods, summarise, format_table,
classification_metrics, finetune_teacher, and the method registry (Method, register_method, get_method,
available_methods; one file per method in training/methods/). See docs/training.md.
"""

import importlib
from typing import Any

# Loaded lazily: the CLI reads TrainConfig's defaults for --help without importing torch and timm.
_WHERE = {
    "compare_methods": "compare", "format_table": "compare", "summarise": "compare",
    "METHODS": "config", "TrainConfig": "config",
    "evaluate": "evaluation", "evaluate_tensors": "evaluation",
    "classification_metrics": "metrics",
    "Method": "methods", "available_methods": "methods", "get_method": "methods", "register_method": "methods",
    "TrainResult": "trainer", "check_compatible": "trainer", "finetune_teacher": "trainer", "train": "trainer",
}

__all__ = ["METHODS", "TrainConfig", "TrainResult", "train", "evaluate", "evaluate_tensors", "compare_methods",
           "summarise", "format_table", "classification_metrics", "finetune_teacher", "check_compatible",
           "Method", "register_method", "get_method", "available_methods"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'edgeskd.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edgeskd.training.{_WHERE[name]}"), name)
