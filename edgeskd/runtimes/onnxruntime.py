"""ONNX Runtime: fp32 from the ONNX file as exported; int8 as a static QDQ model (onnxruntime.quantization,
per-channel int8 weights, uint8 activations) calibrated on training images. The CPU provider has no general fp16 or
bf16 kernels, so those precisions are reported unsupported rather than run through casts."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd._io import atomic_path
from edgeskd.errors import MissingDependency, RuntimeAdapterError
from edgeskd.runtimes.base import (PRECISIONS, Runner, RuntimeAdapter, check_precision, need_calibration,
                                   onnx_input_shape, register)

CPU = "CPUExecutionProvider"


def _has_qdq(path: str | os.PathLike) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in model.graph.node)


class OnnxRuntimeAdapter(RuntimeAdapter):
    name, short, module = "onnxruntime", "ort", "onnxruntime"
    distributions = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")

    def available(self) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return False, f"onnxruntime is not installed ({exc})"
        return True, "ok"

    def providers(self) -> list[str]:
        import onnxruntime as ort

        return list(ort.get_available_providers())

    def device_precisions(self, provider: str = CPU) -> dict[str, str]:
        providers = self.providers()
        if provider not in providers:
            return {p: f"ONNX Runtime here has no {provider} (providers: {providers})" for p in PRECISIONS}
        # int8 QDQ runs on every provider ORT ships (the CPU provider has integer kernels on x86 and Arm).
        result = {"fp32": "", "int8": ""}
        for p in ("bf16", "fp16"):
            result[p] = f"ONNX Runtime {provider} has no general {p} kernels (this adapter builds fp32 and int8 QDQ)"
        return result

    def precision_of(self, path: str | os.PathLike) -> str:
        """What a model file computes in, read from its graph."""
        return "int8" if _has_qdq(path) else "fp32"

    def build(self, onnx_path: Path, out_path: Path, precision: str, *,
              calibration: np.ndarray | None = None) -> Path:
        check_precision(self, precision)
        if precision == "fp32":
            with atomic_path(out_path, suffix=".onnx") as tmp:
                shutil.copyfile(onnx_path, tmp)
            return Path(out_path)
        if precision != "int8":
            raise RuntimeAdapterError(f"ONNX Runtime adapter cannot build {precision}; it builds fp32 and int8")
        images = need_calibration(self, calibration)
        return quantize_qdq(onnx_path, out_path, images)

    def open(self, path: str | os.PathLike, *, precision: str, threads: int, batch: int,
             options: dict[str, Any] | None = None) -> Runner:
        import onnxruntime as ort

        requested = str((options or {}).get("provider", CPU))
        if requested not in ort.get_available_providers():
            raise MissingDependency(f"ONNX Runtime {ort.__version__} here has no {requested}; available: "
                                    f"{ort.get_available_providers()}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # quantised graphs log one warning per unused initializer
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=[requested])
        except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
            raise RuntimeAdapterError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        used = session.get_providers()
        # ONNX Runtime falls back to CPU without saying so: the provider actually used is asserted here.
        if not used or used[0] != requested:
            raise RuntimeAdapterError(f"ONNX Runtime was asked for {requested} but the session uses {used}")
        reported = "int8" if _has_qdq(path) else "fp32"
        if reported != precision:
            raise RuntimeAdapterError(f"{path} is a {reported} model but {precision} was asked for")
        name, shape = onnx_input_shape(path, batch)
        output = session.get_outputs()[0].name
        return Runner(run=lambda x: session.run([output], {name: x})[0], input_shape=shape, input_dtype=np.float32,
                      provider=used[0], precision=reported,
                      reported={"runtime": "onnxruntime", "version": ort.__version__, "providers": used})


def quantize_qdq(onnx_path: str | os.PathLike, out_path: str | os.PathLike, calibration: np.ndarray) -> Path:
    """Static INT8 QDQ quantisation of `onnx_path` calibrated on `calibration` (N, C, S, S), written atomically."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name, _ = onnx_input_shape(onnx_path, 1)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(calibration[i:i + 1] for i in range(len(calibration)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {name: np.ascontiguousarray(item, dtype=np.float32)}

    with atomic_path(out_path, suffix=".onnx") as tmp:
        try:
            # The quantiser logs one root-logger warning per norm/bias it leaves in float; only errors get through.
            logging.disable(logging.WARNING)
            try:
                quantize_static(str(onnx_path), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
            finally:
                logging.disable(logging.NOTSET)
        except Exception as exc:
            raise RuntimeAdapterError(f"ONNX Runtime INT8 quantisation of {onnx_path} failed: "
                                      f"{type(exc).__name__}: {exc}") from exc
    return Path(out_path)


register(OnnxRuntimeAdapter())
