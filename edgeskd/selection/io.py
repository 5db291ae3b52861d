"""Writing and reading selected weights: one safetensors file per model (written atomically), the selection
report beside them as JSON, and the provenance (strategy, teacher, student) in each file's header."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from edgeskd._io import atomic_write_json, load_tensors, save_tensors
from edgeskd._json import parse_json
from edgeskd.errors import SelectionError
from edgeskd.selection.dual import DualSelection
from edgeskd.selection.engine import Selection

METADATA_KEY = "edgeskd.selection"


def save_selection(path: str | os.PathLike, selection: Selection, info: dict[str, Any]) -> Path:
    meta = {METADATA_KEY: json.dumps({"strategy": selection.strategy, **info}, sort_keys=True)}
    return save_tensors(path, selection.state_dict, meta)


def save_dual_selection(out_dir: str | os.PathLike, dual: DualSelection, info: dict[str, Any]) -> dict[str, Path]:
    """Write model_a.safetensors, model_b.safetensors and selection.json into `out_dir`."""
    out = Path(out_dir)
    paths = {
        "a": save_selection(out / "model_a.safetensors", dual.a, {**info, "model": "a"}),
        "b": save_selection(out / "model_b.safetensors", dual.b, {**info, "model": "b"}),
    }
    paths["report"] = atomic_write_json(out / "selection.json", {**info, **dual.report})
    return paths


def load_selection(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, provenance) of a file written by save_selection; no pickle involved."""
    state, meta = load_tensors(path, SelectionError, "selected-weights file")
    if METADATA_KEY not in meta:
        raise SelectionError(f"{path} was not written by edgeskd select (no {METADATA_KEY!r} header entry)")
    return state, parse_json(meta[METADATA_KEY], SelectionError, f"{path}: {METADATA_KEY!r}")
