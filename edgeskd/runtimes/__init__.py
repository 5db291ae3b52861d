"""Runtime adapters: one file per runtime (ONNX Runtime, OpenVINO, TensorRT, torch), one registry.

Export, parity, latency and the search all drive runtimes through these adapters, so each runtime is described
once: is it available, its version and providers, which precisions this device supports (from what the runtime
itself reports), how it builds an artifact from the ONNX file and how it opens a runner on that artifact.
Adding a runtime means one adapter file, registered here, plus its C backend.
"""

from edgeskd.runtimes.base import (PRECISIONS, Runner, RuntimeAdapter, get_adapter, list_adapters, predict,
                                   register, run_protocol)
from edgeskd.runtimes import onnxruntime as _ort, openvino as _ov, tensorrt as _trt, torch as _torch  # noqa: F401

__all__ = ["PRECISIONS", "Runner", "RuntimeAdapter", "get_adapter", "list_adapters", "predict", "register",
           "run_protocol"]
