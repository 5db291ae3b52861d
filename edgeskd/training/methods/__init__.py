"""Training methods, by name, in one registry (like the selection strategies).

Each method is one module in this folder that subclasses :class:`~edgeskd.training.methods.base.Method` and
registers it with ``@register_method``; the module's file name is the method name with "-" written "_"
(dual-skd -> dual_skd.py), which is how a method is found without importing torch (``--help`` lists them).
Adding a method is adding one file here: the training loop, the CLI and the comparison table read the registry.
A method defined elsewhere (a test, a notebook) registers the same way and is used once its module is imported.

This package's __init__ stays free of torch imports; the registry itself lives in base.py.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeskd.training.methods.base import Method

_NOT_METHODS = {"base"}


def builtin_methods() -> tuple[str, ...]:
    """Names of the methods shipped in this folder (from file names; imports nothing)."""
    names = [m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_METHODS
             and not m.name.startswith("_")]
    # our method first, then the baselines alphabetically (the order of --help and of default comparisons)
    return tuple(sorted(names, key=lambda n: (n != "dual-skd", n)))


def available_methods() -> tuple[str, ...]:
    """Built-in methods plus any registered from outside this folder."""
    from edgeskd.training.methods.base import registered

    extra = sorted(set(registered()) - set(builtin_methods()))
    return builtin_methods() + tuple(extra)


def is_method(name: str) -> bool:
    """Whether `name` is a method, without importing torch for the built-in ones."""
    if name in builtin_methods():
        return True
    import sys

    base = sys.modules.get("edgeskd.training.methods.base")
    return base is not None and name in base.registered()


def get_method(name: str) -> Method:
    """The registered method object for `name` (imports its module on first use)."""
    from edgeskd.errors import TrainingError
    from edgeskd.training.methods import base

    if name not in base.registered() and name in builtin_methods():
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    if name not in base.registered():
        raise TrainingError(f"unknown training method {name!r}; expected one of {', '.join(available_methods())}")
    return base.registered()[name]


def __getattr__(name: str) -> Any:
    if name in ("Method", "StepBatch", "register_method"):
        from edgeskd.training.methods import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
