"""random-init: A keeps timm's random initialisation and trains with cross-entropy (the lower baseline)."""

from __future__ import annotations

from edgeskd.training.methods.base import Method, register_method


@register_method
class RandomInit(Method):
    name = "random-init"
    summary = "CE(A(x1), y) from timm's random initialisation"
