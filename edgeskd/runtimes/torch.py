"""torch: a TorchScript file measured as PyTorch itself runs it (the torch-cuda / torch-cpu latency targets). It
cannot be built from an ONNX file: the latency stage traces the module itself (measure_model)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd.errors import MissingDependency, RuntimeAdapterError
from edgeskd.runtimes.base import PRECISIONS, Runner, RuntimeAdapter, register


class TorchAdapter(RuntimeAdapter):
    name, short, module, suffix = "torch", "torch", "torch", ".pt"
    distributions = ("torch",)

    def available(self) -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            return False, f"torch is not installed ({exc})"
        return True, "ok"

    def providers(self) -> list[str]:
        import torch

        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    def device_precisions(self) -> dict[str, str]:
        import torch

        result = {p: f"the torch adapter times fp32 (and fp16 on CUDA) TorchScript, not {p}" for p in PRECISIONS}
        result["fp32"] = ""
        if torch.cuda.is_available():
            result["fp16"] = ""
        return result

    def build(self, onnx_path: Path, out_path: Path, precision: str, *,
              calibration: np.ndarray | None = None) -> Path:
        raise RuntimeAdapterError("the torch runtime cannot be built from ONNX; measure the module itself "
                                  "(edgeskd.latency.measure_model)")

    def open(self, path: str | os.PathLike, *, precision: str, threads: int, batch: int,
             options: dict[str, Any] | None = None) -> Runner:
        """A TorchScript file written by measure_model, with a `<file>.json` sidecar holding the input shape."""
        import torch

        device = str((options or {}).get("device", "cuda"))
        if device == "cuda" and not torch.cuda.is_available():
            raise MissingDependency("target torch-cuda needs a CUDA GPU visible to torch; none found")
        sidecar = Path(str(path) + ".json")
        if str(path).endswith(".onnx") or not sidecar.is_file():
            raise RuntimeAdapterError(f"the torch runtime measures a PyTorch model, not {path}: use measure_model")
        chw = tuple(json.loads(sidecar.read_text())["input_shape"])
        torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device).eval()
        dtype = torch.float16 if precision == "fp16" else torch.float32
        module = module.to(dtype)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                out = module(torch.from_numpy(x).to(device=device, dtype=dtype)).float().cpu()
            sync()
            return out.numpy()

        return Runner(run=run, input_shape=(batch, *chw), input_dtype=np.float32, provider=device,
                      precision=precision, reported={"runtime": "torch", "version": torch.__version__})


register(TorchAdapter())
