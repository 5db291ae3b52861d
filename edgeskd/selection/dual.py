"""Dual weight selection: the two initialisations of dual self-knowledge distillation (model A ships, model B is the
auxiliary), from one teacher with two strategies, plus how much of the teacher they share."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from edgeskd.selection.engine import Selection, select_weights


@dataclass
class DualSelection:
    a: Selection
    b: Selection
    report: dict   # {"a": report, "b": report, "overlap": {...}}


def _space_overlap(a: dict, b: dict) -> dict:
    """Per channel space: |A ∩ B| / student size, counting only indices into the same teacher space."""
    out = {}
    for name, sa in a["spaces"].items():
        sb = b["spaces"][name]
        same = sa["teacher_space"] == sb["teacher_space"]
        shared = len(set(sa["indices"]) & set(sb["indices"])) if same else 0
        out[name] = shared / sa["student_size"] if sa["student_size"] else 1.0
    return out


def _parameter_overlap(a: Selection, b: Selection, params: set[str]) -> float:
    """The fraction of selected student parameters that A and B take from the very same teacher element."""
    total = shared = 0
    for key, src_a in a.sources.items():
        if key not in params:
            continue
        numel = a.state_dict[key].numel()
        total += numel
        src_b = b.sources[key]
        if src_a.teacher_key != src_b.teacher_key:
            continue
        same = 1
        for d, (ia, ib) in enumerate(zip(src_a.index, src_b.index)):
            same *= a.state_dict[key].shape[d] if ia is None else int((ia == ib).sum())
        shared += same
    return shared / total if total else 1.0


def overlap_report(a: Selection, b: Selection, student: nn.Module) -> dict:
    spaces = _space_overlap(a.report, b.report)
    layers = {}
    for stage, la in a.report["layers"].items():
        lb = b.report["layers"][stage]["selected"]
        layers[stage] = sum(x == y for x, y in zip(la["selected"], lb)) / max(1, len(lb))
    sizes = {name: s["student_size"] for name, s in a.report["spaces"].items()}
    weighted = sum(spaces[n] * sizes[n] for n in spaces) / max(1, sum(sizes.values()))
    return {
        "parameters": _parameter_overlap(a, b, {k for k, _ in student.named_parameters()}),
        "channels": weighted,
        "layers": layers,
        "spaces": spaces,
    }


def select_dual(teacher: nn.Module, student: nn.Module, strategy_a: str = "uniform+first",
                strategy_b: str = "uniform:offset=1+even") -> DualSelection:
    """Select model A's and model B's initial weights; the report holds both selections and their overlap:
    `parameters` (the single overall number) is the fraction of selected student parameters that A and B take from
    the same teacher element; `channels` the size-weighted mean of the per-space index overlaps."""
    a = select_weights(teacher, student, strategy_a)
    b = select_weights(teacher, student, strategy_b)
    report = {"a": a.report, "b": b.report, "overlap": overlap_report(a, b, student)}
    return DualSelection(a, b, report)
