"""Training: dual weight selection + self-knowledge distillation + fine-tuning, the baselines, and evaluation.

Public surface: TrainConfig, METHODS, train, TrainResult, evaluate, compare_methods, summarise, format_table,
classification_metrics, finetune_teacher. See docs/training.md.
"""

from edgeskd.training.compare import compare_methods, format_table, summarise
from edgeskd.training.config import METHODS, TrainConfig
from edgeskd.training.evaluate import evaluate, evaluate_tensors
from edgeskd.training.metrics import classification_metrics
from edgeskd.training.trainer import TrainResult, check_compatible, finetune_teacher, train

__all__ = ["METHODS", "TrainConfig", "TrainResult", "train", "evaluate", "evaluate_tensors", "compare_methods",
           "summarise", "format_table", "classification_metrics", "finetune_teacher", "check_compatible"]
