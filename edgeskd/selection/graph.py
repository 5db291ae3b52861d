"""The channel graph of a model: which dimension of which tensor reads or writes which channel space.

Consistency comes from here, not from sizes: two tensor dimensions get the same teacher indices exactly when the
family's graph names the same space for them (the residual stream, an attention layer's heads, an MLP's hidden
units, a bottleneck's inner width). Spaces are named after what they are, so two unrelated dimensions of equal size
are different spaces. Names that start with a block prefix ("blocks.3.mlp") belong to that block and follow it
through the layer mapping; other names ("embed", "conv_stem") are global.

Each family module builds a graph by walking the timm model's modules; every state-dict key outside the classifier
must be described, otherwise selection refuses the model (no silent partial copy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from edgeskd.errors import SelectionError


@dataclass(frozen=True)
class Dim:
    """One tensor dimension's place in a channel space.

    repeat: the dimension concatenates `repeat` copies of the space (timm's fused qkv: 3).
    within: the dimension runs over one group of a grouped space (an attention head's head_dim, e.g. q_norm).
    """

    space: str
    repeat: int = 1
    within: bool = False

    def __str__(self) -> str:
        text = self.space + ("[within]" if self.within else "")
        return f"{text}x{self.repeat}" if self.repeat > 1 else text


DimSpec = tuple[Dim | None, ...]  # per tensor dimension; None = copied whole (kernel taps, image channels, ...)
SpaceLike = str | Dim | None


def _dim(space: SpaceLike) -> Dim | None:
    return Dim(space) if isinstance(space, str) else space


@dataclass
class ChannelGraph:
    family: str
    stages: list[list[str]]                    # block prefixes per stage, in order
    tensors: dict[str, DimSpec]                # every described state-dict key
    groups: dict[str, int] = field(default_factory=dict)   # grouped spaces (attention heads): space -> group count
    head_keys: set[str] = field(default_factory=set)       # the classifier's keys (left to the new task)
    meta: dict = field(default_factory=dict)   # family specifics (e.g. a ViT's patch grid)


class GraphBuilder:
    """Helpers that describe common layers; `finish()` checks that every key was described."""

    def __init__(self, model: nn.Module, family: str):
        self.model = model
        self.family = family
        self.keys = dict(model.state_dict().items())
        self.tensors: dict[str, DimSpec] = {}
        self.groups: dict[str, int] = {}
        self.stages: list[list[str]] = []
        self.meta: dict = {}

    def add(self, key: str, dims: tuple[SpaceLike, ...]) -> None:
        if key not in self.keys:
            raise SelectionError(f"internal: {self.family} graph names {key!r}, which the model does not have")
        spec = tuple(_dim(d) for d in dims)
        if len(spec) != self.keys[key].dim():
            raise SelectionError(f"internal: {self.family} graph gives {key!r} {len(spec)} dims, tensor has "
                                 f"{self.keys[key].dim()}")
        self.tensors[key] = spec

    def param(self, prefix: str, name: str, dims: tuple[SpaceLike, ...]) -> None:
        key = f"{prefix}.{name}" if prefix else name
        if key in self.keys:
            self.add(key, dims)

    def conv(self, prefix: str, module: nn.Module, out: SpaceLike, inp: SpaceLike) -> None:
        """A Conv2d or Linear writing `out` and reading `inp` (None: the input is kept whole, e.g. image channels).
        Dense and depthwise convolutions only: other grouped convolutions tie channels in ways we do not select."""
        if isinstance(module, nn.Conv2d):
            if module.groups == 1:
                dims: tuple[SpaceLike, ...] = (out, inp, None, None)
            elif module.groups == module.in_channels == module.out_channels:
                if _dim(out) != _dim(inp):
                    raise SelectionError(f"internal: depthwise conv {prefix} must read and write one space")
                dims = (out, None, None, None)
            else:
                raise SelectionError(
                    f"{self.family}: {prefix} is a grouped convolution (groups={module.groups}); weight selection "
                    f"supports dense and depthwise convolutions only (e.g. ResNeXt is not supported)")
        elif isinstance(module, nn.Linear):
            dims = (out, inp)
        else:
            raise SelectionError(f"{self.family}: {prefix} is a {type(module).__name__}; expected Conv2d or Linear")
        self.add(f"{prefix}.weight", dims)
        self.param(prefix, "bias", (out,))

    def norm(self, prefix: str, module: nn.Module | None, space: SpaceLike) -> None:
        """BatchNorm / LayerNorm / GroupNorm-free per-channel norms (Identity or None: nothing to describe)."""
        if module is None or isinstance(module, nn.Identity):
            return
        if not isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            raise SelectionError(f"{self.family}: {prefix} is a {type(module).__name__}; weight selection supports "
                                 f"BatchNorm and LayerNorm (per-channel affine) norms only")
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.param(prefix, name, (space,))
        self.param(prefix, "num_batches_tracked", ())

    def chain(self, prefix: str, seq: nn.Module, inp: SpaceLike, out: str | None = None) -> SpaceLike:
        """A Sequential of convs, norms and parameter-free layers (a stem, a downsample): each conv writes a new
        space named after it (the last one writes `out` if given); norms act on the current space."""
        children = list(seq.named_children()) if isinstance(seq, nn.Sequential) else [("", seq)]
        convs = [n for n, m in children if isinstance(m, (nn.Conv2d, nn.Linear))]
        cur = inp
        for name, child in children:
            path = f"{prefix}.{name}" if name else prefix
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                new = out if (out and name == convs[-1]) else path
                self.conv(path, child, new, cur)
                cur = new
            elif any(True for _ in child.parameters(recurse=False)) or isinstance(
                    child, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
                self.norm(path, child, cur)
        return cur

    def finish(self, head: nn.Module | None) -> ChannelGraph:
        head_ids = {id(p) for p in head.parameters()} if head is not None else set()
        head_keys = {k for k, p in self.model.named_parameters() if id(p) in head_ids}
        missing = [k for k in self.keys if k not in self.tensors and k not in head_keys]
        if missing:
            raise SelectionError(
                f"weight selection for the {self.family} family does not know {len(missing)} tensor(s) of this "
                f"{type(self.model).__name__} (first: {', '.join(missing[:5])}); it supports {SUPPORTED[self.family]} "
                f"and refuses other layers rather than copy part of the model")
        return ChannelGraph(self.family, self.stages, self.tensors, self.groups, head_keys, self.meta)


# --- per-family rules, in a registry --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyRules:
    name: str
    graph: Callable[[nn.Module], ChannelGraph]
    supported: str                                    # what layers/variants the rules cover, for error messages
    first_block_fixed: bool = False                   # block 0 of a stage changes width/stride: must map to block 0
    # adapt(key, selected teacher tensor, student shape, teacher graph, student graph) -> tensor, for dimensions
    # that are resampled rather than selected (a ViT's position embedding at another resolution)
    adapt: Callable[[str, torch.Tensor, torch.Size, ChannelGraph, ChannelGraph], torch.Tensor] | None = None


_RULES: dict[str, FamilyRules] = {}
SUPPORTED: dict[str, str] = {}


def register_selection_family(rules: FamilyRules) -> FamilyRules:
    _RULES[rules.name] = rules
    SUPPORTED[rules.name] = rules.supported
    return rules


def list_selection_families() -> list[str]:
    return sorted(_RULES)


def get_rules(family: str) -> FamilyRules:
    if family not in _RULES:
        raise SelectionError(f"weight selection does not support the {family!r} family; supported: "
                             + "; ".join(f"{n} ({r.supported})" for n, r in sorted(_RULES.items())))
    return _RULES[family]


def block_of(name: str, prefixes: dict[str, str]) -> tuple[str, str] | None:
    """(prefix, rest) if `name` lies under one of `prefixes` ("blocks.3" matches "blocks.3.mlp", not "blocks.30")."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        head = ".".join(parts[:n])
        if head in prefixes:
            return head, name[len(head):]
    return None


def rename(name: str, prefixes: dict[str, str]) -> str:
    found = block_of(name, prefixes)
    return prefixes[found[0]] + found[1] if found else name
