"""OpenVINO: IR converted from the ONNX file. fp32 and bf16 share an fp32 IR and differ in the compiled model's
INFERENCE_PRECISION_HINT; fp16 stores fp16-compressed weights and runs with the f16 hint; int8 is NNCF
post-training quantisation (`nncf.quantize`) of the converted model, calibrated on training images, so the IR
holds real FakeQuantize nodes. What this device supports comes from the device's OPTIMIZATION_CAPABILITIES."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeskd._io import atomic_path
from edgeskd.errors import MissingDependency, RuntimeAdapterError
from edgeskd.runtimes.base import PRECISIONS, Runner, RuntimeAdapter, check_precision, need_calibration, register

# edgeskd precision -> (OpenVINO capability name, inference precision hint)
_CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16", "int8": "INT8"}
_HINT = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}  # int8 layers come from the graph itself
_REPORTED = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def _ov():
    try:
        import openvino as ov
    except ImportError as exc:
        raise MissingDependency(f"OpenVINO is not installed ({exc}); pip install openvino") from exc
    return ov


class OpenVinoAdapter(RuntimeAdapter):
    name, short, module, suffix = "openvino", "openvino", "openvino", ".xml"
    distributions = ("openvino",)

    def available(self) -> tuple[bool, str]:
        try:
            _ov()
        except MissingDependency as exc:
            return False, str(exc)
        return True, "ok"

    def providers(self) -> list[str]:
        return list(_ov().Core().available_devices)

    def capabilities(self, device: str = "CPU") -> list[str]:
        return [str(c) for c in _ov().Core().get_property(device, "OPTIMIZATION_CAPABILITIES")]

    def device_precisions(self, device: str = "CPU") -> dict[str, str]:
        if device not in self.providers():
            return {p: f"OpenVINO has no device {device} here (devices: {self.providers()})" for p in PRECISIONS}
        caps = self.capabilities(device)
        result = {}
        for precision in PRECISIONS:
            cap = _CAPABILITY[precision]
            result[precision] = "" if cap in caps else (f"OpenVINO {device} does not report {cap} in its "
                                                        f"OPTIMIZATION_CAPABILITIES {caps}")
        if result["int8"] == "":
            try:
                import nncf  # noqa: F401
            except ImportError as exc:
                result["int8"] = f"NNCF is not installed ({exc}); pip install 'edgeskd[int8]'"
        return result

    def precision_of(self, path: str | os.PathLike) -> str:
        """What an IR computes in when compiled at f32: int8 where NNCF put FakeQuantize nodes, else fp32."""
        model = _ov().Core().read_model(str(path))
        return "int8" if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) else "fp32"

    def build(self, onnx_path: Path, out_path: Path, precision: str, *,
              calibration: np.ndarray | None = None) -> Path:
        check_precision(self, precision)
        ov = _ov()
        try:
            model = ov.convert_model(str(onnx_path))
        except Exception as exc:
            raise RuntimeAdapterError(f"OpenVINO cannot convert {onnx_path}: {type(exc).__name__}: {exc}") from exc
        if precision == "int8":
            model = nncf_quantize(model, need_calibration(self, calibration))
        save_ir(model, Path(out_path), compress_to_fp16=precision == "fp16")
        return Path(out_path)

    def open(self, path: str | os.PathLike, *, precision: str, threads: int, batch: int,
             options: dict[str, Any] | None = None) -> Runner:
        ov = _ov()
        device = str((options or {}).get("device", "CPU"))
        core = ov.Core()
        if device not in core.available_devices:
            raise MissingDependency(f"OpenVINO has no device {device} here; available: {core.available_devices}")
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            raise RuntimeAdapterError(f"OpenVINO cannot read {path}: {exc}") from exc
        dims = model.inputs[0].get_partial_shape()
        if dims.rank.get_length() != 4 or any(d.is_dynamic for d in list(dims)[1:]):
            raise RuntimeAdapterError(f"{path}: input must be NCHW with a fixed C, H, W; got {dims}")
        shape = (batch, *(d.get_length() for d in list(dims)[1:]))
        model.reshape({model.inputs[0].any_name: list(shape)})  # static shape: dynamic batch costs latency
        quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        # The precision is part of what is measured: always set explicitly (OpenVINO picks bf16 by itself on
        # bf16 CPUs).
        config = {"INFERENCE_PRECISION_HINT": _HINT[precision], "INFERENCE_NUM_THREADS": threads,
                  "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        try:
            compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise RuntimeAdapterError(f"OpenVINO cannot compile {path} for {device} at {precision}: {exc}") from exc
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        reported = "int8" if quantized and _REPORTED.get(name) == "fp32" else _REPORTED.get(name, name)
        devices = list(compiled.get_property("EXECUTION_DEVICES"))
        if reported != precision:
            if precision == "int8":
                raise RuntimeAdapterError(f"OpenVINO was asked for int8 on {device} for {path} but reports "
                                          f"{reported} (the IR has no FakeQuantize nodes)")
            caps = [str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES")]
            computes = [p for p in ("fp32", "bf16", "fp16") if _CAPABILITY[p] in caps]
            raise RuntimeAdapterError(f"OpenVINO was asked for {precision} on {device} but the compiled model "
                                      f"reports {reported}; {device} reports it computes in {computes} "
                                      f"(OPTIMIZATION_CAPABILITIES; model {path})")
        if devices != [device]:
            raise RuntimeAdapterError(f"OpenVINO was asked for device {device} but executes on {devices}")
        used_threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        if used_threads != threads:
            raise RuntimeAdapterError(f"OpenVINO was asked for {threads} threads but reports {used_threads}")
        request = compiled.create_infer_request()

        def run(x: np.ndarray) -> np.ndarray:
            request.infer({0: x})
            return request.get_output_tensor(0).data

        return Runner(run=run, input_shape=shape, input_dtype=np.float32, provider=devices[0], precision=reported,
                      reported={"runtime": "openvino", "version": ov.get_version(), "execution_devices": devices,
                                "inference_precision": str(hint), "inference_num_threads": used_threads,
                                "fake_quantize": quantized})


def nncf_quantize(model: Any, calibration: np.ndarray) -> Any:
    """NNCF post-training quantisation of an OpenVINO model on all `calibration` images (one per batch)."""
    try:
        import nncf
    except ImportError as exc:
        raise MissingDependency(f"OpenVINO int8 needs NNCF ({exc}); pip install 'edgeskd[int8]'") from exc
    items = [calibration[i:i + 1] for i in range(len(calibration))]
    try:
        return nncf.quantize(model, nncf.Dataset(items), subset_size=len(items),
                             preset=nncf.QuantizationPreset.PERFORMANCE)
    except Exception as exc:
        raise RuntimeAdapterError(f"NNCF quantisation failed: {type(exc).__name__}: {exc}") from exc


def save_ir(model: Any, xml_path: Path, *, compress_to_fp16: bool) -> tuple[Path, Path]:
    """Write the .xml and its .bin, each atomically (save_model writes both under one stem: stage, then rename)."""
    ov = _ov()
    bin_path = xml_path.with_suffix(".bin")
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".ov-", dir=xml_path.parent) as tmp:
            staged = Path(tmp) / xml_path.name
            ov.save_model(model, str(staged), compress_to_fp16=compress_to_fp16)
            for src, dst in ((staged.with_suffix(".bin"), bin_path), (staged, xml_path)):
                with atomic_path(dst) as out:
                    os.replace(src, out)
    except Exception as exc:
        raise RuntimeAdapterError(f"OpenVINO cannot write {xml_path}: {type(exc).__name__}: {exc}") from exc
    return xml_path, bin_path


register(OpenVinoAdapter())
