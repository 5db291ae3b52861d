"""A small ctypes binding of libedgeskd (deploy/include/edgeskd.h), used by the tests and benchmarks/c_runtime.py.

    with CModel(bundle_dir, backend="openvino", threads=1) as model:
        probs = model.classify_pixels(pixels)      # uint8 (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA
"""

from __future__ import annotations

import ctypes as C
import os
from pathlib import Path

import numpy as np

DEPLOY = Path(__file__).resolve().parents[1]
DEFAULT_LIBRARY = DEPLOY / "build" / "libedgeskd.so"
BACKENDS = {"onnxruntime": 0, "openvino": 1, "tensorrt": 2}


class CRuntimeError(RuntimeError):
    """A non-zero edgeskd_status; `status` is its name (e.g. "EDGESKD_ERR_IO")."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class _Options(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("backend", C.c_int), ("num_threads", C.c_int32),
                ("device", C.c_char_p), ("flags", C.c_uint32), ("manifest_sha256", C.c_char_p)]


OPEN_FORCE_THREADS = 1


def load_library(path: str | os.PathLike | None = None) -> C.CDLL:
    lib = C.CDLL(str(path or DEFAULT_LIBRARY))
    u8p, f32p, size = C.POINTER(C.c_uint8), C.POINTER(C.c_float), C.c_size_t
    lib.edgeskd_options_init.argtypes = [C.POINTER(_Options)]
    lib.edgeskd_options_init.restype = None
    lib.edgeskd_open.argtypes = [C.c_char_p, C.POINTER(_Options), C.POINTER(C.c_void_p), C.c_char_p, size]
    lib.edgeskd_close.argtypes = [C.c_void_p]
    lib.edgeskd_close.restype = None
    lib.edgeskd_last_error.argtypes = [C.c_void_p]
    lib.edgeskd_last_error.restype = C.c_char_p
    lib.edgeskd_status_string.argtypes = [C.c_int]
    lib.edgeskd_status_string.restype = C.c_char_p
    lib.edgeskd_input_shape.argtypes = [C.c_void_p, C.POINTER(C.c_int64)]
    lib.edgeskd_input_size.argtypes = [C.c_void_p, C.POINTER(size)]
    lib.edgeskd_num_labels.argtypes = [C.c_void_p, C.POINTER(size)]
    lib.edgeskd_label.argtypes = [C.c_void_p, size, C.POINTER(C.c_char_p)]
    lib.edgeskd_preprocess.argtypes = [C.c_void_p, u8p, size, size, size, size, f32p, size]
    lib.edgeskd_classify.argtypes = [C.c_void_p, f32p, size, f32p, size]
    lib.edgeskd_classify_pixels.argtypes = [C.c_void_p, u8p, size, size, size, size, f32p, size]
    lib.edgeskd_backend_available.argtypes = [C.c_int]
    return lib


def _pixels(image: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    if image.dtype != np.uint8:
        raise ValueError(f"the C runtime takes uint8 pixels; got {image.dtype}")
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        return image, image.shape[1], image.shape[0], 1
    if image.ndim == 3:
        return image, image.shape[1], image.shape[0], image.shape[2]
    raise ValueError(f"image must be (H, W) or (H, W, C); got shape {image.shape}")


class CModel:
    """One edgeskd_model handle."""

    def __init__(self, bundle: str | os.PathLike, *, backend: str = "onnxruntime", threads: int = 0,
                 device: str | None = None, library: C.CDLL | str | os.PathLike | None = None,
                 force_threads: bool = False, manifest_sha256: str | None = None) -> None:
        self.lib = library if isinstance(library, C.CDLL) else load_library(library)
        opts = _Options()
        self.lib.edgeskd_options_init(C.byref(opts))
        opts.backend, opts.num_threads = BACKENDS[backend], threads
        opts.device = device.encode() if device else None
        opts.flags = OPEN_FORCE_THREADS if force_threads else 0
        opts.manifest_sha256 = manifest_sha256.encode() if manifest_sha256 else None
        handle, err = C.c_void_p(), C.create_string_buffer(1024)
        status = self.lib.edgeskd_open(str(bundle).encode(), C.byref(opts), C.byref(handle), err, len(err))
        if status:
            raise CRuntimeError(self._status(status), err.value.decode())
        self.handle = handle
        shape = (C.c_int64 * 4)()
        count = C.c_size_t()
        self._check(self.lib.edgeskd_input_shape(self.handle, shape))
        self.input_shape = tuple(shape)
        self._check(self.lib.edgeskd_num_labels(self.handle, C.byref(count)))
        self.labels = []
        for i in range(count.value):
            label = C.c_char_p()
            self._check(self.lib.edgeskd_label(self.handle, i, C.byref(label)))
            self.labels.append(label.value.decode())
        self._probs = np.empty(len(self.labels), np.float32)

    def _status(self, status: int) -> str:
        return self.lib.edgeskd_status_string(status).decode()

    def _check(self, status: int) -> None:
        if status:
            raise CRuntimeError(self._status(status), self.lib.edgeskd_last_error(self.handle).decode())

    @staticmethod
    def _fptr(array: np.ndarray):
        return array.ctypes.data_as(C.POINTER(C.c_float))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        pixels, w, h, c = _pixels(image)
        out = np.empty(self.input_shape[1:], np.float32)
        self._check(self.lib.edgeskd_preprocess(self.handle, pixels.ctypes.data_as(C.POINTER(C.c_uint8)), w, h, c, 0,
                                                self._fptr(out), out.size))
        return out

    def classify(self, tensor: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(tensor, dtype=np.float32)
        self._check(self.lib.edgeskd_classify(self.handle, self._fptr(x), x.size, self._fptr(self._probs),
                                              self._probs.size))
        return self._probs.copy()

    def classify_pixels(self, image: np.ndarray) -> np.ndarray:
        pixels, w, h, c = _pixels(image)
        self._check(self.lib.edgeskd_classify_pixels(self.handle, pixels.ctypes.data_as(C.POINTER(C.c_uint8)), w, h,
                                                     c, 0, self._fptr(self._probs), self._probs.size))
        return self._probs.copy()

    def close(self) -> None:
        if getattr(self, "handle", None):
            self.lib.edgeskd_close(self.handle)
            self.handle = None

    def __enter__(self) -> CModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
