"""select_weights: a student's initial weights from a subset of a same-family teacher's weights.

Steps: describe both models as channel graphs; map the student's blocks onto the teacher's (layer strategy, per
stage); check that every student tensor has a teacher tensor with the same structure (same spaces on the same
dimensions, after renaming blocks); pick one index set per channel space (element strategy); gather every tensor
with its spaces' index sets. Pure: neither model is modified and the result shares no storage with the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from edgeskd.errors import ModelError, SelectionError
from edgeskd.models.families import family_of
from edgeskd.selection.graph import ChannelGraph, Dim, DimSpec, block_of, get_rules, rename
from edgeskd.selection.strategies import (SpaceInfo, Strategy, get_element_strategy, get_layer_strategy,
                                          parse_strategy)


@dataclass(frozen=True)
class TensorSource:
    """Where one student tensor came from: the teacher key, its channel spaces and the teacher indices per dim."""

    teacher_key: str
    dims: DimSpec
    index: tuple[torch.Tensor | None, ...]   # per dim: teacher indices (None: copied whole or resampled)


@dataclass
class Selection:
    state_dict: dict[str, torch.Tensor]   # every student key except the classifier head's
    strategy: str
    report: dict
    sources: dict[str, TensorSource] = field(default_factory=dict, repr=False)


@dataclass
class _Space:
    name: str                  # student naming
    teacher_name: str
    teacher_size: int = 0
    student_size: int = 0
    teacher_groups: int = 1
    student_groups: int = 1
    uses: list[tuple[str, int, int]] = field(default_factory=list)   # (teacher key, dim, repeat) for magnitudes
    index: torch.Tensor | None = None          # teacher indices over the whole space
    within: torch.Tensor | None = None         # teacher indices inside one group
    groups: torch.Tensor | None = None         # teacher group (head) indices


def _family(teacher: nn.Module, student: nn.Module) -> str:
    try:
        t, s = family_of(teacher, "teacher"), family_of(student, "student")
    except ModelError as exc:
        raise SelectionError(str(exc)) from exc
    if t != s:
        raise SelectionError(f"the teacher is of the {t!r} family and the student of the {s!r} family; weight "
                             f"selection needs both in one family")
    return t


def _layer_map(strategy: Strategy, teacher: ChannelGraph, student: ChannelGraph, fixed: bool) -> dict[str, str]:
    if len(teacher.stages) != len(student.stages):
        raise SelectionError(f"{student.family}: the teacher has {len(teacher.stages)} stages and the student "
                             f"{len(student.stages)}; selection maps stage to stage")
    layer = get_layer_strategy(strategy.layer)
    mapping: dict[str, str] = {}
    for n, (t_blocks, s_blocks) in enumerate(zip(teacher.stages, student.stages)):
        if len(s_blocks) > len(t_blocks):
            raise SelectionError(f"{student.family}: stage {n} of the student has {len(s_blocks)} blocks, the "
                                 f"teacher's only {len(t_blocks)}; a student cannot be deeper than its teacher")
        if not s_blocks:
            continue
        chosen = sorted(int(i) for i in layer(len(t_blocks), len(s_blocks), **strategy.layer_kwargs))
        if len(set(chosen)) != len(s_blocks) or chosen[0] < 0 or chosen[-1] >= len(t_blocks):
            raise SelectionError(f"layer strategy {strategy.layer!r} returned {chosen} for {len(s_blocks)} of "
                                 f"{len(t_blocks)} blocks; expected distinct indices in range")
        if fixed and chosen[0] != 0:
            raise SelectionError(f"layer strategy {strategy.layer!r} skips block 0 of stage {n}; in the "
                                 f"{student.family} family block 0 changes width and stride and must be kept")
        mapping.update({s: t_blocks[i] for s, i in zip(s_blocks, chosen)})
    return mapping


def _teacher_dims(dims: DimSpec, back: dict[str, str]) -> DimSpec:
    return tuple(None if d is None else Dim(rename(d.space, back), d.repeat, d.within) for d in dims)


def _core(dims: DimSpec) -> DimSpec:
    """Dims without trailing whole dims, so that a 1x1 conv and a Linear with the same spaces compare equal (the
    gather reshapes; a real kernel-size difference is caught by the shape check)."""
    dims = tuple(dims)
    while dims and dims[-1] is None:
        dims = dims[:-1]
    return dims


def _core_shape(shape: torch.Size) -> tuple[int, ...]:
    shape = tuple(shape)
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _fmt(dims: DimSpec) -> str:
    return "(" + ", ".join("-" if d is None else str(d) for d in dims) + ")"


def _plan(teacher_state, student_state, tg: ChannelGraph, sg: ChannelGraph, to_teacher: dict[str, str]):
    """Teacher key per student key, after checking the structure; and the channel spaces with their sizes."""
    to_student = {t: s for s, t in to_teacher.items()}
    keys: dict[str, str] = {}
    spaces: dict[str, _Space] = {}
    for key, dims in sg.tensors.items():
        tkey = rename(key, to_teacher)
        if tkey not in tg.tensors:
            raise SelectionError(f"{sg.family}: the student's {key} has no counterpart {tkey} in the teacher; "
                                 f"the two models are not built alike (e.g. a downsample or layer one model has and the "
                                 f"other lacks)")
        tdims = tg.tensors[tkey]
        tdims = _teacher_dims(tdims, to_student)
        if _core(tdims) != _core(dims):
            raise SelectionError(f"{sg.family}: student {key} {_fmt(dims)} and teacher {tkey} {_fmt(tdims)} read or "
                                 f"write different channel spaces; the two models are not built alike (e.g. a residual connection or "
                                 f"downsample that one model has and the other lacks, because rounded widths made a "
                                 f"block's input and output widths equal in one of them)")
        tshape, sshape = teacher_state[tkey].shape, student_state[key].shape
        for d, dim in enumerate(dims):
            if dim is None:
                continue
            tname = rename(dim.space, to_teacher)
            sp = spaces.setdefault(dim.space, _Space(dim.space, tname, teacher_groups=tg.groups.get(tname, 1),
                                                     student_groups=sg.groups.get(dim.space, 1)))
            t_size, s_size = tshape[d] // dim.repeat, sshape[d] // dim.repeat
            if dim.within:
                t_size, s_size = t_size * sp.teacher_groups, s_size * sp.student_groups
            else:
                sp.uses.append((tkey, d, dim.repeat))
            if (sp.teacher_size, sp.student_size) == (0, 0):
                sp.teacher_size, sp.student_size = t_size, s_size
            elif (sp.teacher_size, sp.student_size) != (t_size, s_size):
                raise SelectionError(f"{sg.family}: channel space {dim.space!r} has {sp.student_size} student / "
                                     f"{sp.teacher_size} teacher channels elsewhere but {s_size} / {t_size} in {key}")
        keys[key] = (tkey, tdims)
    for sp in spaces.values():
        if sp.student_size > sp.teacher_size or sp.student_groups > sp.teacher_groups:
            raise SelectionError(f"{sg.family}: the student's channel space {sp.name!r} ({sp.student_size} channels, "
                                 f"{sp.student_groups} group(s)) is wider than the teacher's ({sp.teacher_size}, "
                                 f"{sp.teacher_groups}); a student cannot be wider than its teacher")
        if sp.teacher_size % sp.teacher_groups or sp.student_size % sp.student_groups:
            raise SelectionError(f"{sg.family}: channel space {sp.name!r} does not split into its heads")
    return keys, spaces


def _magnitudes(sp: _Space, teacher_state: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-channel L1 magnitude over the teacher tensors that read or write the space (weights of rank >= 2 when
    there are any: biases and norm statistics measure something else), each normalised by its mean."""
    uses = [u for u in sp.uses if teacher_state[u[0]].dim() >= 2] or sp.uses
    total = torch.zeros(sp.teacher_size, dtype=torch.float64)
    for tkey, d, repeat in uses:
        t = teacher_state[tkey].detach().float()
        other = [i for i in range(t.dim()) if i != d]
        norms = (torch.linalg.vector_norm(t, 1, dim=other) if other else t.abs()).double()
        norms = norms.reshape(repeat, -1).sum(0)
        total += norms / norms.mean().clamp_min(1e-30)
    return total


def _pick(strategy: Strategy, teacher_size: int, student_size: int, info: SpaceInfo) -> torch.Tensor:
    fn = get_element_strategy(strategy.element)
    index = torch.as_tensor(fn(teacher_size, student_size, info, **strategy.element_kwargs)).long().flatten()
    index = torch.sort(index).values
    if (len(index) != student_size or (len(index) and (index[0] < 0 or index[-1] >= teacher_size))
            or len(torch.unique(index)) != student_size):
        raise SelectionError(f"element strategy {strategy.element!r} returned an invalid index set for space "
                             f"{info.name!r} ({student_size} of {teacher_size}): {index.tolist()[:10]}")
    return index


def _choose(strategy: Strategy, sp: _Space, teacher_state: dict[str, torch.Tensor]) -> None:
    cache: dict[str, torch.Tensor] = {}

    def scores() -> torch.Tensor:
        if "s" not in cache:
            cache["s"] = _magnitudes(sp, teacher_state)
        return cache["s"]

    if sp.teacher_groups == 1 and sp.student_groups == 1:
        sp.index = _pick(strategy, sp.teacher_size, sp.student_size, SpaceInfo(sp.name, scores))
        sp.within = sp.index
        return
    # grouped (attention heads): whole heads, then the same positions inside every kept head
    t_dim, s_dim = sp.teacher_size // sp.teacher_groups, sp.student_size // sp.student_groups
    if s_dim > t_dim:
        raise SelectionError(f"space {sp.name!r}: student head_dim {s_dim} exceeds the teacher's {t_dim}")
    sp.groups = _pick(strategy, sp.teacher_groups, sp.student_groups, SpaceInfo(
        f"{sp.name}#heads", lambda: scores().reshape(sp.teacher_groups, t_dim).sum(1)))
    sp.within = _pick(strategy, t_dim, s_dim, SpaceInfo(
        f"{sp.name}#head_dim", lambda: scores().reshape(sp.teacher_groups, t_dim).sum(0)))
    sp.index = (sp.groups[:, None] * t_dim + sp.within[None, :]).flatten()


def _dim_index(dim: Dim, sp: _Space) -> torch.Tensor:
    base = sp.within if dim.within else sp.index
    size = sp.teacher_size // sp.teacher_groups if dim.within else sp.teacher_size
    return torch.cat([base + r * size for r in range(dim.repeat)])


def select_weights(teacher: nn.Module, student: nn.Module, strategy: str | Strategy = "uniform+first") -> Selection:
    """Initial weights for every non-classifier tensor of `student`, selected from `teacher` (same family)."""
    parsed = parse_strategy(strategy)
    family = _family(teacher, student)
    rules = get_rules(family)
    tg, sg = rules.graph(teacher), rules.graph(student)
    teacher_state, student_state = teacher.state_dict(), student.state_dict()
    to_teacher = _layer_map(parsed, tg, sg, rules.first_block_fixed)
    keys, spaces = _plan(teacher_state, student_state, tg, sg, to_teacher)
    for sp in spaces.values():
        _choose(parsed, sp, teacher_state)

    state: dict[str, torch.Tensor] = {}
    sources: dict[str, TensorSource] = {}
    for key, (tkey, dims) in keys.items():
        tensor = teacher_state[tkey].detach()
        index = tuple(None if d is None else _dim_index(d, spaces[d.space]) for d in dims)
        for d, idx in enumerate(index):
            if idx is not None:
                tensor = tensor.index_select(d, idx)
        want = student_state[key]
        if tensor.shape != want.shape and _core_shape(tensor.shape) == _core_shape(want.shape):
            tensor = tensor.reshape(want.shape)  # 1x1 conv <-> Linear
            index = tuple(index[d] if d < len(index) else None for d in range(want.dim()))
        if tensor.shape != want.shape:
            if rules.adapt is None:
                raise SelectionError(f"{family}: {key} selected from {tkey} has shape {tuple(tensor.shape)}, the "
                                     f"student needs {tuple(want.shape)} (a dimension kept whole differs: kernel "
                                     f"size, patch size or input channels)")
            tensor = rules.adapt(key, tensor, want.shape, tg, sg)
        state[key] = tensor.to(dtype=want.dtype).clone().contiguous()
        sources[key] = TensorSource(tkey, sg.tensors[key], index)
    report = _report(parsed, family, teacher, student, tg, sg, to_teacher, spaces, sources, state, teacher_state)
    return Selection(state, str(parsed), report, sources)


def _param_count(model: nn.Module, head_keys: set[str]) -> int:
    return sum(p.numel() for k, p in model.named_parameters() if k not in head_keys)


def _report(strategy, family, teacher, student, tg, sg, to_teacher, spaces, sources, state, teacher_state) -> dict:
    params = {k for k, _ in student.named_parameters()}
    kept = sum(state[k].numel() for k in state if k in params)
    teacher_total = _param_count(teacher, tg.head_keys)
    stages = {}
    for n, blocks in enumerate(sg.stages):
        t_blocks = tg.stages[n]
        stages[f"stage{n}"] = {"teacher_blocks": len(t_blocks), "selected": [t_blocks.index(to_teacher[b]) for b in blocks]}
    return {
        "family": family,
        "strategy": str(strategy),
        "kept_parameters": kept,
        "teacher_parameters": teacher_total,
        "kept_fraction": kept / teacher_total if teacher_total else 0.0,
        "classifier_left": sorted(sg.head_keys),
        "layers": stages,
        "tensors": [{"student": k, "teacher": s.teacher_key, "dims": [None if d is None else str(d) for d in s.dims],
                     "student_shape": list(state[k].shape),
                     "kept_fraction": state[k].numel() / max(1, teacher_state[s.teacher_key].numel())}
                    for k, s in sources.items()],
        "spaces": {sp.name: {"teacher_space": sp.teacher_name, "teacher_size": sp.teacher_size,
                             "student_size": sp.student_size,
                             **({"teacher_heads": sp.teacher_groups, "student_heads": sp.student_groups,
                                 "heads": sp.groups.tolist()} if sp.groups is not None else {}),
                             "indices": sp.index.tolist()}
                   for sp in spaces.values()},
    }


def apply_selection(student: nn.Module, selection: Selection) -> nn.Module:
    """Load `selection` into `student` in place: every non-classifier key must be present with its shape."""
    own = student.state_dict()
    family = family_of(student, "student")
    head = get_rules(family).graph(student).head_keys
    missing = [k for k in own if k not in head and k not in selection.state_dict]
    unexpected = [k for k in selection.state_dict if k not in own]
    shapes = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in selection.state_dict.items()
              if k in own and v.shape != own[k].shape]
    if missing or unexpected or shapes:
        raise SelectionError(
            f"selection ({selection.strategy}) does not fit this student: {len(missing)} missing "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(shapes)} shape mismatches {shapes[:3]}")
    with torch.no_grad():
        for key, value in selection.state_dict.items():
            own[key].copy_(value)
    return student
