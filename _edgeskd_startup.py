"""Start-up hook installed with edgeskd (loaded by edgeskd-startup.pth at interpreter start).

Why: PyPI's torchvision wheels link CUDA libraries for their C++ ops. Beside the CPU-only torch wheel those ops do
not load, and `import torchvision` (so `import timm`) then fails with "operator torchvision::nms does not exist",
because torchvision registers Python fake kernels for two ops whose schemas only its C++ library defines. A user's
own `import timm` must work in the environment edgeskd is installed in, before or after `import edgeskd`.

How: a meta-path finder that never finds anything itself; it only watches for `torchvision._meta_registrations`.
torchvision imports that module right after it tried to load its C++ library, so at that moment we know for certain
whether the two schemas exist. Only where they are missing are they defined, so torchvision's own imports proceed;
where torchvision's C++ ops loaded (a CUDA machine) nothing changes. Start-up cost: one small module, no torch import
(torch is only touched once torchvision, which imports torch itself, is being imported).

Set EDGESKD_NO_TORCHVISION_FIX=1 to disable the hook.
"""

from __future__ import annotations

import os
import sys

_WATCHED = "torchvision._meta_registrations"
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library fragment (and so the schemas) alive for the life of the process


def define_missing_torchvision_schemas() -> list[str]:
    """Define the torchvision op schemas that torchvision's C++ library would have defined; return the ones added."""
    global _library
    import torch

    added = []
    for name, schema in _SCHEMAS.items():
        if hasattr(torch.ops.torchvision, name):
            continue  # torchvision's C++ ops loaded (or we ran before): leave torchvision as it is
        if _library is None:
            _library = torch.library.Library("torchvision", "FRAGMENT")
        _library.define(schema)
        added.append(name)
    return added


class _TorchvisionSchemaFix:
    """Meta-path finder that finds nothing; it defines missing schemas just before torchvision needs them."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname == _WATCHED:
            uninstall()  # one shot: once torchvision is imported the finder has nothing left to do
            try:
                define_missing_torchvision_schemas()
            except Exception:  # noqa: BLE001 - never break an import from a start-up hook; torchvision reports
                pass
        return None


def install() -> None:
    """Put the finder first on sys.meta_path unless disabled or torchvision is already imported."""
    if os.environ.get("EDGESKD_NO_TORCHVISION_FIX", "") not in ("", "0"):
        return
    if "torchvision" in sys.modules or _TorchvisionSchemaFix in sys.meta_path:
        return
    sys.meta_path.insert(0, _TorchvisionSchemaFix)


def uninstall() -> None:
    if _TorchvisionSchemaFix in sys.meta_path:
        sys.meta_path.remove(_TorchvisionSchemaFix)


install()
