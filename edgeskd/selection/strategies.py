"""Selection strategies, by name, in two registries (after timm's model registry).

A strategy string is "<element>[:k=v,...]+<layer>[:k=v,...]", e.g. "uniform+first" (the reference method),
"uniform:offset=1+even", "random:seed=3+even", "magnitude+first". A bare element name means "+first".

- An element strategy picks which teacher indices a student keeps along one channel space:
  ``fn(teacher_size, student_size, space, **args) -> 1-D integer tensor`` of `student_size` distinct indices.
  `space` is a :class:`SpaceInfo` (its name, and lazily the teacher's per-channel magnitudes).
- A layer strategy picks which teacher blocks of a stage feed the student's blocks:
  ``fn(teacher_blocks, student_blocks, **args) -> list[int]`` of distinct block indices.

The engine sorts whatever a strategy returns (the student keeps the teacher's channel and block order) and checks it.
When the teacher and student sizes are equal, every built-in strategy returns the identity.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from edgeskd.errors import SelectionError

ElementStrategy = Callable[..., torch.Tensor]
LayerStrategy = Callable[..., list[int]]

_ELEMENT: dict[str, ElementStrategy] = {}
_LAYER: dict[str, LayerStrategy] = {}


def register_element_strategy(name: str):
    """Decorator: register an element strategy under `name`."""

    def wrap(fn: ElementStrategy) -> ElementStrategy:
        _ELEMENT[name] = fn
        return fn

    return wrap


def register_layer_strategy(name: str):
    """Decorator: register a layer strategy under `name`."""

    def wrap(fn: LayerStrategy) -> LayerStrategy:
        _LAYER[name] = fn
        return fn

    return wrap


def list_element_strategies() -> list[str]:
    return sorted(_ELEMENT)


def list_layer_strategies() -> list[str]:
    return sorted(_LAYER)


def get_element_strategy(name: str) -> ElementStrategy:
    if name not in _ELEMENT:
        raise SelectionError(f"unknown element strategy {name!r}; registered: {', '.join(list_element_strategies())}")
    return _ELEMENT[name]


def get_layer_strategy(name: str) -> LayerStrategy:
    if name not in _LAYER:
        raise SelectionError(f"unknown layer strategy {name!r}; registered: {', '.join(list_layer_strategies())}")
    return _LAYER[name]


@dataclass
class SpaceInfo:
    """What an element strategy may know about the channel space it selects in."""

    name: str                                   # e.g. "embed", "blocks.3.mlp", "blocks.3.attn#heads"
    _scores: Callable[[], torch.Tensor] | None = field(default=None, repr=False)

    def scores(self) -> torch.Tensor:
        """Per-index importance from the teacher's weights (normalised L1 over every tensor touching the space)."""
        if self._scores is None:
            raise SelectionError(f"no teacher magnitudes are available for channel space {self.name!r}")
        return self._scores()


# --- the strategy string ---------------------------------------------------------------------------------------------
Args = tuple[tuple[str, int | float | str], ...]


def _value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _format_args(name: str, args: Args) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in args) if args else "")


def _parse_part(text: str, what: str, whole: str) -> tuple[str, Args]:
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise SelectionError(f"strategy {whole!r}: empty {what} strategy name")
    args: list[tuple[str, int | float | str]] = []
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SelectionError(f"strategy {whole!r}: argument {item!r} of {name!r} is not key=value")
        args.append((key.strip(), _value(value.strip())))
    return name, tuple(sorted(args))


def _check_args(fn: Callable, name: str, args: Args, fixed: int, whole: str) -> None:
    params = list(inspect.signature(fn).parameters.values())[fixed:]
    accepted = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    unknown = [k for k, _ in args if k not in accepted]
    if unknown:
        raise SelectionError(f"strategy {whole!r}: {name!r} takes no argument {', '.join(unknown)}; "
                             f"it accepts: {', '.join(sorted(accepted)) or 'no arguments'}")


@dataclass(frozen=True)
class Strategy:
    element: str
    element_args: Args = ()
    layer: str = "first"
    layer_args: Args = ()

    @property
    def element_kwargs(self) -> dict[str, int | float | str]:
        return dict(self.element_args)

    @property
    def layer_kwargs(self) -> dict[str, int | float | str]:
        return dict(self.layer_args)

    def __str__(self) -> str:
        return f"{_format_args(self.element, self.element_args)}+{_format_args(self.layer, self.layer_args)}"


def parse_strategy(text: str | Strategy) -> Strategy:
    """Parse "<element>[:k=v,...]+<layer>[:k=v,...]"; unknown names or arguments raise SelectionError."""
    if isinstance(text, Strategy):
        return text
    if not isinstance(text, str) or not text.strip():
        raise SelectionError(f"strategy must be a non-empty string like 'uniform+first'; got {text!r}")
    element_text, plus, layer_text = text.strip().partition("+")
    if "+" in layer_text:
        raise SelectionError(f"strategy {text!r}: expected one '+' between the element and layer strategies")
    element, element_args = _parse_part(element_text, "element", text)
    layer, layer_args = _parse_part(layer_text, "layer", text) if plus else ("first", ())
    _check_args(get_element_strategy(element), element, element_args, 3, text)
    _check_args(get_layer_strategy(layer), layer, layer_args, 2, text)
    return Strategy(element, element_args, layer, layer_args)


# --- element strategies ------------------------------------------------------------------------------------------------
@register_element_strategy("uniform")
def uniform(teacher: int, student: int, space: SpaceInfo, offset: int = 0) -> torch.Tensor:
    """Evenly spaced indices. Offset 0 is the reference method exactly: arange(S) * (T // S) when T is divisible by
    S, otherwise round(linspace(0, T - 1, S)). Offset k > 0 shifts floor(i * T / S) by k modulo the room left at
    the end (T / S when divisible), so offsets 0 and 1 pick disjoint sets when S divides T and T >= 2 S (with
    non-divisible sizes they may share a few indices, since offset 0 follows the reference's linspace)."""
    if offset == 0:
        if teacher % student == 0:
            return torch.arange(student) * (teacher // student)
        return torch.linspace(0, teacher - 1, student).round().long()
    base = torch.arange(student) * teacher // student
    room = teacher - int(base[-1])
    return base + int(offset) % room


@register_element_strategy("consecutive")
def consecutive(teacher: int, student: int, space: SpaceInfo, offset: int = 0) -> torch.Tensor:
    """A contiguous run of indices starting at `offset` (modulo the room left: T - S + 1)."""
    return torch.arange(student) + int(offset) % (teacher - student + 1)


@register_element_strategy("random")
def random(teacher: int, student: int, space: SpaceInfo, seed: int = 0) -> torch.Tensor:
    """A random subset; reproducible from `seed` and the space's name (each space draws its own subset)."""
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(space.name.encode()))
    return torch.randperm(teacher, generator=generator)[:student]


@register_element_strategy("magnitude")
def magnitude(teacher: int, student: int, space: SpaceInfo, largest: int = 1) -> torch.Tensor:
    """The indices whose teacher weights have the largest L1 magnitude (smallest with largest=0); ties go to the
    lower index. The magnitude of an index sums, over every teacher tensor that reads or writes the space, the L1
    norm of its slice divided by that tensor's mean slice norm (so no single tensor dominates by its scale)."""
    scores = space.scores().double()
    order = torch.sort(-scores if largest else scores, stable=True).indices
    return order[:student]


# --- layer strategies --------------------------------------------------------------------------------------------------
@register_layer_strategy("first")
def first(teacher: int, student: int) -> list[int]:
    """The first N blocks (per stage): the reference method."""
    return list(range(student))


@register_layer_strategy("even")
def even(teacher: int, student: int) -> list[int]:
    """Blocks spread evenly across the stage's depth, always including the first and the last."""
    if student == 1:
        return [0]
    return [int(v) for v in torch.linspace(0, teacher - 1, student).round().long()]
