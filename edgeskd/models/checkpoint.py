"""Trained-model checkpoints: one .safetensors file holding the weights, with everything needed to rebuild and use
the model (student spec, preprocessing, labels, provenance) as JSON in the safetensors header. No pickle anywhere.

This is the hand-over format between stages: `edgeskd train` writes it, `edgeskd export` reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from edgeskd._io import load_tensors, save_tensors
from edgeskd._json import parse_json
from edgeskd.data.preprocess import PreprocessSpec
from edgeskd.errors import ModelError
from edgeskd.models.students import StudentSpec, build_student
from edgeskd.models.teacher import load_weights_strict

FORMAT = "edgeskd.checkpoint/1"


@dataclass
class Checkpoint:
    model: nn.Module
    spec: StudentSpec
    preprocess: PreprocessSpec
    labels: list[str]
    info: dict[str, Any] = field(default_factory=dict)  # teacher, selection strategies, training summary, metrics


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write atomically."""
    if len(ckpt.labels) != ckpt.spec.num_classes:
        raise ModelError(f"{len(ckpt.labels)} labels for a {ckpt.spec.num_classes}-class model")
    meta = {
        "format": FORMAT,
        "student": json.dumps(ckpt.spec.to_dict()),
        "preprocess": json.dumps(ckpt.preprocess.to_dict()),
        "labels": json.dumps(ckpt.labels),
        "info": json.dumps(ckpt.info, default=str),
    }
    return save_tensors(path, ckpt.model.state_dict(), meta)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    state, meta = load_tensors(path, ModelError, "checkpoint")
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not an edgeskd checkpoint (format {meta.get('format')!r}, expected {FORMAT!r}); "
                         f"plain weight files go to --teacher-weights")
    spec = StudentSpec.from_dict(parse_json(meta.get("student"), ModelError, f"checkpoint {path}: 'student'"))
    model = build_student(spec)
    load_weights_strict(model, state, str(path))
    preprocess, labels, info = (parse_json(meta.get(key, default), ModelError, f"checkpoint {path}: {key!r}")
                                for key, default in (("preprocess", None), ("labels", None), ("info", "{}")))
    return Checkpoint(model.eval(), spec, PreprocessSpec.from_dict(preprocess), labels, info)

