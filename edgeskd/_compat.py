"""Import shims for the CPU machine, kept in one place.

PyPI's torchvision wheels link CUDA libraries for their C++ ops. Beside the CPU-only torch wheel its import fails
with "operator torchvision::nms does not exist", because torchvision registers Python fake kernels for two ops whose
schemas its C++ library would have defined. Defining those two schemas first lets torchvision (and so timm) import;
only torchvision's own C++ ops stay unavailable, and timm does not use them. Where torchvision imports normally this
module does nothing.
"""

from __future__ import annotations

import importlib

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library fragment alive for the life of the process
_ready = False


def ensure_torchvision() -> None:
    """Make `import torchvision` (and therefore `import timm`) work; idempotent."""
    global _library, _ready
    if _ready:
        return
    try:
        importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        import sys

        import torch

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _SCHEMAS.values():
            try:
                _library.define(schema)
            except RuntimeError:
                pass  # already defined (torchvision's C++ library loaded far enough to register it)
        importlib.import_module("torchvision")
    _ready = True


def import_timm():
    """Import timm after the torchvision shim; every edgeskd module imports timm through this."""
    ensure_torchvision()
    return importlib.import_module("timm")
