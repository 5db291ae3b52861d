"""Evaluation of a trained model on an ImageSet (or on already preprocessed tensors)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from edgeskd.data.preprocess import PreprocessSpec
from edgeskd.errors import TrainingError
from edgeskd.training.metrics import classification_metrics

MONITORS = ("balanced_accuracy", "accuracy", "macro_f1", "auroc_macro")


def primary_metric(monitor: str, multilabel: bool) -> str:
    if monitor == "auto":
        return "auroc_macro" if multilabel else "balanced_accuracy"
    if monitor not in MONITORS:
        raise TrainingError(f"unknown monitor metric {monitor!r}; expected auto or one of {', '.join(MONITORS)}")
    return monitor


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, multilabel: bool, batch_size: int = 256) -> np.ndarray:
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device  # the model may live on a GPU; the images come in batches
    try:
        outs = [model(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    logits = torch.cat(outs)
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)
    return probs.double().numpy()


def evaluate_tensors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: list[str], multilabel: bool, *,
                     batch_size: int = 256) -> dict[str, Any]:
    probs = predict_proba(model, x, multilabel, batch_size)
    if probs.shape[1] != len(classes):
        raise TrainingError(f"model outputs {probs.shape[1]} values per image but the set has {len(classes)} classes")
    return classification_metrics(probs, y.numpy(), classes, multilabel)


def evaluate(model: nn.Module, images, preprocess: PreprocessSpec, *, batch_size: int = 256) -> dict[str, Any]:
    """Requirement-4 metrics of `model` on an ImageSet, preprocessed exactly as in training and export."""
    from edgeskd.data import to_tensors

    x, y = to_tensors(images, preprocess)
    return evaluate_tensors(model, torch.as_tensor(x).float(), torch.as_tensor(y), list(images.classes),
                            bool(images.multilabel), batch_size=batch_size)
