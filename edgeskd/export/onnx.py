"""PyTorch -> ONNX, through one pinned exporter path.

Pinned: the TorchScript-based exporter (`dynamo=False`) at opset 17. It needs no onnxscript at export time, gives
stable node names across torch releases and covers every family the student factory builds. Weights are stored
inside the single .onnx file (students are far below protobuf's 2 GB limit).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from edgeskd._io import atomic_path
from edgeskd.errors import ExportError

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, path: str | os.PathLike, *, resolution: int, in_chans: int = 3,
                opset: int = OPSET, dynamic_batch: bool = True) -> Path:
    """Export `model` (eval mode, float32) to `path` atomically and check it with onnx.checker."""
    import onnx

    model = model.eval()
    example = torch.zeros(1, in_chans, resolution, resolution)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with atomic_path(path, suffix=".onnx") as tmp:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about python control flow in timm blocks
                torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as exc:
            raise ExportError(f"ONNX export of {type(model).__name__} to {path} failed: {type(exc).__name__}: {exc}") from exc
    return Path(path)


def run_onnx(path: str | os.PathLike, batch: np.ndarray, *, threads: int = 1) -> tuple[np.ndarray, str]:
    """Logits of an ONNX file (fp32 or int8 QDQ) on ONNX Runtime's CPU provider, and a description of the runtime
    actually used (the adapter asserts the provider: ONNX Runtime falls back to CPU silently)."""
    from edgeskd.runtimes import get_adapter, predict

    adapter = get_adapter("onnxruntime")
    try:
        precision = adapter.precision_of(path)  # type: ignore[attr-defined]
        runner = adapter.open(path, precision=precision, threads=threads, batch=max(1, len(batch)))
        logits = predict(runner, batch)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot run {path}: {type(exc).__name__}: {exc}") from exc
    return logits, f"onnxruntime {runner.reported['version']} {runner.provider}"
