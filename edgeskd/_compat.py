"""Import shims for the CPU machine, kept in one place.

PyPI's torchvision wheels link CUDA libraries for their C++ ops. Beside the CPU-only torch wheel its import fails
with "operator torchvision::nms does not exist", because torchvision registers Python fake kernels for two ops whose
schemas its C++ library would have defined. Defining those two schemas first lets torchvision (and so timm) import;
only torchvision's own C++ ops stay unavailable, and timm does not use them. Where torchvision imports normally this
module does nothing.

The installed package also ships a start-up hook (_edgeskd_startup, loaded by edgeskd-startup.pth) that does the same
for any `import timm` in the environment; this module is the fallback for when that hook is disabled
(EDGESKD_NO_TORCHVISION_FIX=1) or edgeskd runs from a source tree that was never installed.
"""

from __future__ import annotations

import importlib
import sys

_ready = False


def ensure_torchvision() -> None:
    """Make `import torchvision` (and therefore `import timm`) work; idempotent."""
    global _ready
    if _ready:
        return
    try:
        importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        from _edgeskd_startup import define_missing_torchvision_schemas  # shipped beside edgeskd (py-modules)

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        define_missing_torchvision_schemas()
        importlib.import_module("torchvision")
    _ready = True


def import_timm():
    """Import timm after the torchvision shim; every edgeskd module imports timm through this."""
    ensure_torchvision()
    return importlib.import_module("timm")
