"""TensorRT: an engine built from the ONNX file on the GPU that runs it (fp32, fp16; int8 from a QDQ model built by
the ONNX Runtime adapter, TensorRT's explicit quantisation). What the GPU supports comes from the builder
(platform_has_fast_fp16 / platform_has_fast_int8 while TensorRT still has them). Engines are specific to the GPU,
the TensorRT version and the shapes, so the latency worker builds them into a cache keyed by all of those.

Not exercised on the CPU-only development machine: TensorRT needs an NVIDIA GPU.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd._io import atomic_write_bytes
from edgeskd.errors import MissingDependency, RuntimeAdapterError
from edgeskd.runtimes.base import (PRECISIONS, Runner, RuntimeAdapter, check_precision, need_calibration,
                                   onnx_input_shape, register)

WORKSPACE_BYTES = 1 << 30
MAX_BATCH = 32


def _trt():
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise MissingDependency(f"TensorRT is not installed here ({exc}); it builds engines on the NVIDIA GPU machine "
                                f"that runs them: pip install 'edgeskd[tensorrt]' there (TensorRT >= 10)") from exc
    if int(trt.__version__.split(".")[0]) < 10:
        raise MissingDependency(f"TensorRT {trt.__version__} found; edgeskd needs TensorRT >= 10")
    return trt


def _cache_dir() -> Path:
    root = os.environ.get("EDGESKD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "edgeskd")
    return Path(root) / "tensorrt"


class TensorRtAdapter(RuntimeAdapter):
    name, short, module, suffix = "tensorrt", "tensorrt", "tensorrt", ".engine"
    distributions = ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13")

    def available(self) -> tuple[bool, str]:
        try:
            _trt()
        except MissingDependency as exc:
            return False, str(exc)
        try:
            import torch

            if not torch.cuda.is_available():
                return False, "TensorRT is installed but no CUDA GPU is visible to torch"
        except ImportError:
            return False, "TensorRT needs torch with CUDA for its buffers here"
        return True, "ok"

    def providers(self) -> list[str]:
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]

    def device_precisions(self) -> dict[str, str]:
        trt = _trt()
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        result = {p: "" for p in PRECISIONS}
        # Deprecated in TensorRT 10 and may disappear; where absent, TensorRT decides per layer and we trust it.
        if getattr(builder, "platform_has_fast_fp16", True) is False:
            result["fp16"] = "TensorRT builder reports no fast fp16 on this GPU"
        if getattr(builder, "platform_has_fast_int8", True) is False:
            result["int8"] = "TensorRT builder reports no fast int8 on this GPU"
        result["bf16"] = "this adapter builds fp32, fp16 and int8 TensorRT engines"
        return result

    def build(self, onnx_path: Path, out_path: Path, precision: str, *,
              calibration: np.ndarray | None = None, max_batch: int = MAX_BATCH, shape: tuple[int, ...] | None = None
              ) -> Path:
        check_precision(self, precision)
        if precision == "bf16":
            raise RuntimeAdapterError("this TensorRT adapter builds fp32, fp16 and int8 engines, not bf16")
        if precision == "int8":
            from edgeskd.runtimes.onnxruntime import quantize_qdq

            qdq = Path(out_path).with_suffix(".qdq.onnx")
            onnx_path = quantize_qdq(onnx_path, qdq, need_calibration(self, calibration))
        trt = _trt()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeAdapterError(f"TensorRT cannot parse {onnx_path}: {errors or 'no parser message'}")
        name = network.get_input(0).name
        dims = tuple(network.get_input(0).shape)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        supported = self.device_precisions()
        if precision in ("fp16", "int8") and supported[precision]:
            raise RuntimeAdapterError(f"{precision} engine requested but {supported[precision]}")
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # scales come from the QDQ nodes (explicit quantisation)
        profile = builder.create_optimization_profile()
        one = shape or (1, *dims[1:])
        profile.set_shape(name, one, one, shape or (max_batch, *dims[1:]))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeAdapterError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
        return atomic_write_bytes(out_path, bytes(serialized))

    def open(self, path: str | os.PathLike, *, precision: str, threads: int, batch: int,
             options: dict[str, Any] | None = None) -> Runner:
        """An .engine file, or an ONNX file whose engine is built into (or loaded from) the engine cache."""
        trt = _trt()
        import torch

        if not torch.cuda.is_available():
            raise MissingDependency("TensorRT needs a CUDA GPU visible to torch; none found")
        props = torch.cuda.get_device_properties(0)
        cache_hit = True
        if str(path).endswith(".onnx"):
            input_name, shape = onnx_input_shape(path, batch)
            key = hashlib.sha256(json.dumps({
                "onnx": hashlib.sha256(Path(path).read_bytes()).hexdigest(), "gpu": props.name,
                "cc": f"{props.major}.{props.minor}", "trt": trt.__version__, "precision": precision,
                "shape": list(shape)}, sort_keys=True).encode()).hexdigest()
            engine_path = _cache_dir() / f"{key[:32]}.engine"
            if not engine_path.is_file():
                if precision == "int8":
                    raise RuntimeAdapterError("TensorRT int8 latency needs the engine built with calibration first")
                self.build(Path(path), engine_path, precision, shape=shape)
                cache_hit = False
        else:
            engine_path = Path(path)
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            raise RuntimeAdapterError(f"TensorRT cannot load {engine_path}: built for another GPU or TensorRT version?")
        context = engine.create_execution_context()
        input_name = engine.get_tensor_name(0)
        shape = (batch, *tuple(engine.get_tensor_shape(input_name))[1:])
        context.set_input_shape(input_name, shape)
        buffers: dict[str, Any] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            buffers[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, buffers[name].data_ptr())
        stream = torch.cuda.Stream()
        output_name = next(n for n in buffers if n != input_name)

        def run(x: np.ndarray) -> np.ndarray:
            # Host -> device copy, execution and synchronisation are all inside the call, as a deployment pays them.
            with torch.cuda.stream(stream):
                buffers[input_name].copy_(torch.from_numpy(x))
                if not context.execute_async_v3(stream.cuda_stream):
                    raise RuntimeAdapterError("TensorRT execute_async_v3 failed")
                out = buffers[output_name].cpu()
            stream.synchronize()
            return out.numpy()

        return Runner(run=run, input_shape=shape, input_dtype=np.float32, provider="TensorRT", precision=precision,
                      reported={"runtime": "tensorrt", "version": trt.__version__, "gpu": props.name,
                                "compute_capability": f"{props.major}.{props.minor}", "engine": str(engine_path),
                                "engine_cache_hit": cache_hit})


register(TensorRtAdapter())
