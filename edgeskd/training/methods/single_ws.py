"""single-ws: one weight selection from the teacher, then cross-entropy (weight selection, Xu et al.)."""

from __future__ import annotations

from edgeskd.training.methods.base import Method, Run, register_method, select_single


@register_method
class SingleWS(Method):
    name = "single-ws"
    summary = "CE(A(x1), y) from one weight selection (Xu et al.)"

    def init_models(self, run: Run) -> None:
        select_single(run)
