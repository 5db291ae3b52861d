"""Runtime back-ends, used only inside the measurement worker process (edgeskd.latency.worker).

Each `open_*` loads a model for a target and returns a Runner: a callable that runs one batch synchronously (GPU
work included), plus what the runtime itself reports about the provider and precision it really uses. A runner that
cannot use what the target asks for raises instead of silently running something else.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd.errors import LatencyError, MissingDependency
from edgeskd.latency.targets import Target


@dataclass
class Runner:
    run: Callable[[np.ndarray], Any]
    input_shape: tuple[int, ...]          # including the batch dimension
    input_dtype: Any
    provider: str                         # what the runtime reports it runs on
    precision: str                        # what the runtime reports (canonical fp32/fp16/bf16 where known)
    reported: dict[str, Any] = field(default_factory=dict)


def onnx_input_shape(path: str | os.PathLike, batch: int) -> tuple[str, tuple[int, ...]]:
    """(input name, static shape) of the model's single input, the batch axis set to `batch`."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise LatencyError(f"{path}: expected a model with one input; found {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = []
    for axis, dim in enumerate(dims):
        if axis == 0:
            shape.append(batch)
        elif dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        else:
            raise LatencyError(f"{path}: input '{inputs[0].name}' has a symbolic size {dim.dim_param!r} at axis "
                               f"{axis}; export it with a fixed resolution")
    if len(shape) != 4:
        raise LatencyError(f"{path}: input '{inputs[0].name}' must be NCHW (4 dimensions); got {len(shape)}")
    return inputs[0].name, tuple(shape)


def open_runner(path: str, target: Target, batch: int) -> Runner:
    openers = {"onnxruntime": open_onnxruntime, "openvino": open_openvino, "tensorrt": open_tensorrt,
               "torch": open_torch}
    if target.runtime not in openers:
        raise LatencyError(f"runtime {target.runtime!r} cannot be measured in a local worker")
    return openers[target.runtime](path, target, batch)


def open_onnxruntime(path: str, target: Target, batch: int) -> Runner:
    import onnxruntime as ort

    requested = str(target.options["provider"])
    if requested not in ort.get_available_providers():
        raise MissingDependency(f"ONNX Runtime {ort.__version__} here has no {requested}; available: "
                                f"{ort.get_available_providers()}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = target.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, sess_options=opts, providers=[requested])
    except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
        raise LatencyError(f"ONNX Runtime cannot load {path}: {exc}") from exc
    used = session.get_providers()
    # ONNX Runtime falls back to CPU without saying so: the provider actually used is asserted here.
    if not used or used[0] != requested:
        raise LatencyError(f"ONNX Runtime was asked for {requested} but the session uses {used}")
    name, shape = onnx_input_shape(path, batch)
    output_names = [o.name for o in session.get_outputs()]
    return Runner(run=lambda x: session.run(output_names, {name: x}), input_shape=shape, input_dtype=np.float32,
                  provider=used[0], precision="fp32", reported={"providers": used})


_OV_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_OV_REPORTED = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


# OPTIMIZATION_CAPABILITIES entries that mean "this device computes in that precision" (CPU: FP16 needs
# AVX512-FP16 or ARM fp16, BF16 needs AVX512-BF16/AMX); fp32 is always there.
_OV_CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16"}


def openvino_precisions(device: str = "CPU", core: Any = None) -> set[str]:
    """Precisions (fp32/bf16/fp16) that OpenVINO reports `device` computes in, from OPTIMIZATION_CAPABILITIES."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    capabilities = {str(c).upper() for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES")}
    return {precision for precision, capability in _OV_CAPABILITY.items() if capability in capabilities}


def open_openvino(path: str, target: Target, batch: int) -> Runner:
    import openvino as ov

    device = str(target.options.get("device", "CPU"))
    core = ov.Core()
    if device not in core.available_devices:
        raise MissingDependency(f"OpenVINO has no device {device} here; available: {core.available_devices}")
    try:
        model = core.read_model(path)
    except Exception as exc:
        raise LatencyError(f"OpenVINO cannot read {path}: {exc}") from exc
    name, shape = onnx_input_shape(path, batch)
    model.reshape({model.inputs[0].any_name: list(shape)})  # static shape: dynamic batch costs latency in OpenVINO
    # The precision is part of the target: always set explicitly (OpenVINO picks bf16 by itself on bf16 CPUs).
    config = {"INFERENCE_PRECISION_HINT": _OV_HINTS[target.precision], "INFERENCE_NUM_THREADS": target.threads,
              "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(model, device, config)
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    reported = _OV_REPORTED.get(hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint), str(hint))
    devices = list(compiled.get_property("EXECUTION_DEVICES"))
    if reported != target.precision:
        supported = sorted(openvino_precisions(device, core))
        raise LatencyError(f"OpenVINO was asked for {target.precision} on {device} but the compiled model reports "
                           f"{reported}; {device} reports it computes in {supported} (OPTIMIZATION_CAPABILITIES)")
    if devices != [device]:
        raise LatencyError(f"OpenVINO was asked for device {device} but executes on {devices}")
    threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))
    if threads != target.threads:
        raise LatencyError(f"OpenVINO was asked for {target.threads} threads but reports {threads}")
    request = compiled.create_infer_request()
    return Runner(run=lambda x: request.infer({0: x}), input_shape=shape, input_dtype=np.float32, provider=devices[0],
                  precision=reported, reported={"execution_devices": devices, "inference_precision": str(hint),
                                                "inference_num_threads": threads, "version": ov.get_version()})


def _engine_cache_dir() -> Path:
    root = os.environ.get("EDGESKD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "edgeskd")
    return Path(root) / "tensorrt"


def open_tensorrt(path: str, target: Target, batch: int) -> Runner:
    """Build (or load from the cache) a TensorRT engine for this GPU and run it with execute_async_v3.

    The engine cache key covers everything an engine is specific to: the ONNX bytes, GPU name, compute capability,
    TensorRT version, precision and input shape. CUDA memory and the stream come from torch (a dependency anyway).
    """
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise MissingDependency("TensorRT is not installed here (pip install 'edgeskd[tensorrt]' on a GPU machine, "
                                f"or JetPack on a Jetson): {exc}") from exc
    import torch

    if not torch.cuda.is_available():
        raise MissingDependency("TensorRT needs a CUDA GPU visible to torch; none found")
    props = torch.cuda.get_device_properties(0)
    input_name, shape = onnx_input_shape(path, batch)
    onnx_bytes = Path(path).read_bytes()
    key = hashlib.sha256(json.dumps({
        "onnx": hashlib.sha256(onnx_bytes).hexdigest(), "gpu": props.name, "cc": f"{props.major}.{props.minor}",
        "trt": trt.__version__, "precision": target.precision, "shape": list(shape)}, sort_keys=True).encode()).hexdigest()
    engine_path = _engine_cache_dir() / f"{key[:32]}.engine"
    logger = trt.Logger(trt.Logger.WARNING)
    if engine_path.is_file():
        serialized, cache_hit = engine_path.read_bytes(), True
    else:
        serialized, cache_hit = _build_engine(trt, logger, onnx_bytes, input_name, shape, target), False
        from edgeskd._io import atomic_write_bytes

        atomic_write_bytes(engine_path, serialized)
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    if engine is None:
        raise LatencyError(f"TensorRT could not deserialize the engine {engine_path}")
    context = engine.create_execution_context()
    context.set_input_shape(input_name, shape)
    buffers: dict[str, torch.Tensor] = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dims = tuple(context.get_tensor_shape(name))
        dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
        buffers[name] = torch.empty(dims, dtype=dtype, device="cuda")
        context.set_tensor_address(name, buffers[name].data_ptr())
    stream = torch.cuda.Stream()
    device_input = buffers[input_name]

    def run(x: np.ndarray) -> None:
        # Host -> device copy, execution and synchronisation are all inside the timed call, as a deployment pays them.
        with torch.cuda.stream(stream):
            device_input.copy_(torch.from_numpy(x), non_blocking=False)
            if not context.execute_async_v3(stream.cuda_stream):
                raise LatencyError("TensorRT execute_async_v3 failed")
            outputs = [t.cpu() for n, t in buffers.items() if n != input_name]
        stream.synchronize()
        return outputs

    return Runner(run=run, input_shape=shape, input_dtype=np.float32, provider="TensorRT", precision=target.precision,
                  reported={"gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
                            "tensorrt": trt.__version__, "engine": str(engine_path), "engine_cache_hit": cache_hit})


def _build_engine(trt: Any, logger: Any, onnx_bytes: bytes, input_name: str, shape: tuple[int, ...],
                  target: Target) -> bytes:
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise LatencyError(f"TensorRT's ONNX parser rejected the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(target.options.get("workspace_mib", 1024)) << 20)
    if target.precision == "fp16":
        if not builder.platform_has_fast_fp16:
            raise LatencyError("TensorRT target asks for fp16 but this GPU has no fast fp16")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, shape, shape, shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise LatencyError("TensorRT failed to build an engine (see the TensorRT log above)")
    return bytes(serialized)


def open_torch(path: str, target: Target, batch: int) -> Runner:
    """A TorchScript file written by measure_model, with a `<file>.json` sidecar holding the input shape."""
    import torch

    device = str(target.options.get("device", "cuda"))
    if device == "cuda" and not torch.cuda.is_available():
        raise MissingDependency("target torch-cuda needs a CUDA GPU visible to torch; none found")
    sidecar = Path(str(path) + ".json")
    if str(path).endswith(".onnx") or not sidecar.is_file():
        raise LatencyError(f"{target.name} measures a PyTorch model, not {path}: use measure_model(model, ...)")
    chw = tuple(json.loads(sidecar.read_text())["input_shape"])
    torch.set_num_threads(target.threads)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location=device).eval()
    dtype = torch.float16 if target.precision == "fp16" else torch.float32
    module = module.to(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run(x: np.ndarray) -> Any:
        with torch.inference_mode():
            out = module(torch.from_numpy(x).to(device=device, dtype=dtype)).cpu()
        sync()
        return out

    return Runner(run=run, input_shape=(batch, *chw), input_dtype=np.float32, provider=device,
                  precision=target.precision, reported={"torch": torch.__version__})
