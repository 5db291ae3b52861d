"""ONNX -> TensorRT engine (FP32 or FP16), built with TensorRT 10's Python API on the machine that will run it.

An engine is specific to the GPU model, the TensorRT version and the shapes of its optimisation profile, so it is
built on the target (never shipped from elsewhere) and the manifest records what it was built for. The engine keeps
the ONNX model's dynamic batch through one optimisation profile: batch 1 (optimal) up to `max_batch`.

TensorRT is an optional extra (`pip install 'edgeskd[tensorrt]'` on a GPU machine); where it is absent every entry
point raises MissingDependency with that instruction. Device buffers come from torch's CUDA allocator when torch
has CUDA, else from pycuda (in the extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd.errors import ExportError, MissingDependency
from edgeskd.export.onnx import INPUT_NAME, OUTPUT_NAME

MAX_BATCH = 32


def _tensorrt():
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise MissingDependency(
            f"TensorRT is not installed here ({exc}); it builds engines on the NVIDIA GPU machine that runs them: "
            f"pip install 'edgeskd[tensorrt]' there (TensorRT >= 10)") from exc
    if int(trt.__version__.split(".")[0]) < 10:
        raise MissingDependency(f"TensorRT {trt.__version__} found; edgeskd needs TensorRT >= 10")
    return trt


def available() -> tuple[bool, str]:
    """(usable, reason): TensorRT imports and a CUDA device is visible."""
    try:
        _tensorrt()
    except MissingDependency as exc:
        return False, str(exc)
    from edgeskd.doctor import gpu_info

    if not gpu_info():
        return False, "TensorRT is installed but no NVIDIA GPU is visible (nvidia-smi found none)"
    return True, "ok"


def build_info() -> dict[str, Any]:
    """What an engine built here is tied to (recorded in the manifest beside the engine)."""
    from edgeskd.doctor import gpu_info

    trt = _tensorrt()
    gpus = gpu_info()
    return {"tensorrt": trt.__version__, "gpu": gpus[0]["name"] if gpus else None,
            "compute_capability": gpus[0]["compute_capability"] if gpus else None}


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, fp16: bool,
                 max_batch: int = MAX_BATCH) -> Path:
    """Parse the ONNX file, build a serialized engine for this GPU (profile batch 1..max_batch) and write it
    atomically: the TensorRT runtime adapter's build, with the export's input-name check."""
    from edgeskd.runtimes import get_adapter

    _tensorrt()
    import onnx

    names = [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]
    if names[:1] != [INPUT_NAME]:
        raise ExportError(f"{onnx_path}: expected one input named {INPUT_NAME!r}; found {names}")
    return get_adapter("tensorrt").build(Path(onnx_path), Path(engine_path), "fp16" if fp16 else "fp32",
                                         max_batch=max_batch)  # type: ignore[call-arg]


def run_engine(engine_path: str | os.PathLike, batch: np.ndarray) -> tuple[np.ndarray, str]:
    """Logits of an engine on batch (N, C, S, S) float32, in chunks of the profile's max batch."""
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise ExportError(f"TensorRT cannot load {engine_path}: built for another GPU or TensorRT version? "
                          f"Rebuild it on this machine with 'edgeskd export --formats tensorrt'")
    context = engine.create_execution_context()
    max_batch = engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0]
    outputs = []
    for start in range(0, len(batch), max_batch):
        chunk = np.ascontiguousarray(batch[start:start + max_batch], dtype=np.float32)
        context.set_input_shape(INPUT_NAME, chunk.shape)
        out_shape = tuple(context.get_tensor_shape(OUTPUT_NAME))
        outputs.append(_execute(context, chunk, out_shape))
    return np.concatenate(outputs), f"tensorrt {trt.__version__}"


def _execute(context: Any, chunk: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """One synchronous run through the name-based tensor API (set_tensor_address + execute_async_v3)."""
    try:
        import torch

        use_torch = torch.cuda.is_available()
    except ImportError:
        use_torch = False
    if use_torch:
        device_in = torch.from_numpy(chunk).cuda()
        device_out = torch.empty(out_shape, dtype=torch.float32, device="cuda")
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())  # the input copy ran on the default stream
        context.set_tensor_address(INPUT_NAME, device_in.data_ptr())
        context.set_tensor_address(OUTPUT_NAME, device_out.data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise ExportError("TensorRT execution failed")
        stream.synchronize()
        return device_out.cpu().numpy()
    try:
        import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
        import pycuda.driver as cuda
    except ImportError as exc:
        raise MissingDependency("running a TensorRT engine needs torch with CUDA or pycuda "
                                "(pip install 'edgeskd[tensorrt]')") from exc
    host_out = np.empty(out_shape, dtype=np.float32)
    device_in, device_out = cuda.mem_alloc(chunk.nbytes), cuda.mem_alloc(host_out.nbytes)
    stream = cuda.Stream()
    cuda.memcpy_htod_async(device_in, chunk, stream)
    context.set_tensor_address(INPUT_NAME, int(device_in))
    context.set_tensor_address(OUTPUT_NAME, int(device_out))
    if not context.execute_async_v3(stream.handle):
        raise ExportError("TensorRT execution failed")
    cuda.memcpy_dtoh_async(host_out, device_out, stream)
    stream.synchronize()
    return host_out
