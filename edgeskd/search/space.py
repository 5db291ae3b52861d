"""Search spaces: YAML files under search/spaces/ (shipped as the `edgeskd.profiles` package), one per teacher family.

A space file has these top-level keys (all validated; an error names the file and the key):

    family: efficientnet          # the teacher family this space is for (edgeskd.models.family_of)
    student:                      # StudentSpec multipliers and input side, within the teacher's family
      depth: {choices: [0.5, 0.75, 1.0]}
      width: {choices: [0.5, 0.75, 1.0]}
      resolution: {choices: [128, 160, 192, 224]}
    strategies:                   # candidate (model A, model B) selection-strategy pairs
      - [uniform, uniform-offset1]
    train:                        # searched TrainConfig fields
      lr: {low: 1.0e-4, high: 3.0e-3, log: true}
      kd_weight: {low: 0.25, high: 2.0}
    fixed: {method: single-ws}    # TrainConfig fields every trial uses
    schedule:                     # epochs per trial (short) and for the winner's final training (full)
      trial: {epochs_skd: 3, epochs_finetune: 1}
      final: {epochs_skd: 10, epochs_finetune: 4}
    pruner: {type: median, n_startup_trials: 3, n_warmup_steps: 1}
    sampler: tpe                  # tpe (default) | random | gp | cmaes (edgeskd.search.sampler)
    deploy:                       # optional: runtimes x precisions searched (edgeskd.search.deployment)
      runtimes: [ort, openvino]
      precisions: [fp32, int8]

A parameter is a constant, `{choices: [...]}` (categorical), or `{low, high}` with optional `log: true` and
`step` (integer when low, high and step are all integers).
"""

from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeskd.errors import SearchError
from edgeskd.search.deployment import DeploySpace, parse_deploy

PAIR_SEPARATOR = " | "  # how a (strategy A, strategy B) pair is written as one Optuna categorical value
STUDENT_KEYS = ("depth", "width", "resolution")
TOP_KEYS = {"family", "description", "student", "strategies", "train", "fixed", "schedule", "pruner", "sampler",
            "deploy"}
ARCHITECTURE = "student"  # the one categorical that replaces the student dimensions when a latency map is complete
PRUNERS = {"median", "percentile", "hyperband", "none"}


@dataclass(frozen=True)
class Param:
    """One search dimension: a constant, a categorical, or a numeric range."""

    name: str
    value: Any = None                    # constant
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @property
    def is_int(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step or 1))

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.low is not None:
            if self.is_int:
                return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
            return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)
        return self.value

    def values(self) -> list[Any]:
        """Every value a grid could take (ranges: their ends), used to find the smallest candidate."""
        if self.choices is not None:
            return list(self.choices)
        if self.low is not None:
            return [self.low, self.high]
        return [self.value]


@dataclass(frozen=True)
class Schedule:
    trial: dict[str, Any]
    final: dict[str, Any]


@dataclass(frozen=True)
class SearchSpace:
    source: str
    family: str
    student: dict[str, Param]
    strategies: tuple[tuple[str, str], ...]
    train: dict[str, Param]
    fixed: dict[str, Any]
    schedule: Schedule
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    description: str = ""
    sampler: str = "tpe"
    deploy: DeploySpace | None = None    # None: the configured target alone, as before deployment-aware search

    @property
    def discrete_student(self) -> bool:
        """Every student dimension is a constant or a list of choices, so the architectures can be enumerated."""
        return all(p.low is None for p in self.student.values())

    @property
    def has_numeric_range(self) -> bool:
        return any(p.low is not None for p in (*self.student.values(), *self.train.values()))

    def architectures(self) -> list[dict[str, Any]]:
        """Every student of a discrete space (the product of its choices), in a fixed order."""
        import itertools

        names = list(self.student)
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.student[n].values() for n in names))]

    def sample(self, trial, architectures: dict[str, dict[str, Any]] | None = None
               ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(student kwargs, TrainConfig overrides) for one Optuna trial; strategies go into the train overrides.

        With `architectures` (name -> student kwargs, e.g. the under-budget part of a latency map) the student is
        one categorical choice among them instead of one parameter per dimension: the sampler never sees the rest.
        """
        if architectures is not None:
            student = dict(architectures[trial.suggest_categorical(ARCHITECTURE, sorted(architectures))])
        else:
            student = {name: p.suggest(trial) for name, p in self.student.items()}
        train = dict(self.fixed)
        train.update({name: p.suggest(trial) for name, p in self.train.items()})
        pair = trial.suggest_categorical("strategies", [PAIR_SEPARATOR.join(p) for p in self.strategies])
        train["strategy_a"], train["strategy_b"] = pair.split(PAIR_SEPARATOR)
        train.update(self.schedule.trial)
        return student, train

    def train_fields(self) -> set[str]:
        """Every TrainConfig field this space sets (checked against TrainConfig once training is importable)."""
        return (set(self.fixed) | set(self.train) | set(self.schedule.trial) | set(self.schedule.final)
                | {"strategy_a", "strategy_b"})

    def smallest_student(self) -> dict[str, Any]:
        """The cheapest corner of the student space (smallest depth, width, resolution)."""
        return {name: min(p.values()) for name, p in self.student.items()}

    def to_dict(self) -> dict[str, Any]:
        def param(p: Param) -> Any:
            if p.choices is not None:
                return {"choices": list(p.choices)}
            if p.low is not None:
                return {k: v for k, v in (("low", p.low), ("high", p.high), ("log", p.log), ("step", p.step)) if v}
            return p.value

        return {"source": self.source, "family": self.family, "description": self.description,
                "student": {k: param(p) for k, p in self.student.items()},
                "strategies": [list(p) for p in self.strategies],
                "train": {k: param(p) for k, p in self.train.items()}, "fixed": dict(self.fixed),
                "schedule": {"trial": dict(self.schedule.trial), "final": dict(self.schedule.final)},
                "pruner": dict(self.pruner), "sampler": self.sampler,
                "deploy": self.deploy.to_dict() if self.deploy else None}


# --- loading --------------------------------------------------------------------------------------------------------

def spaces_dir() -> Path:
    """The folder of the shipped space files (edgeskd.profiles/spaces)."""
    try:
        return Path(str(importlib.resources.files("edgeskd.profiles"))) / "spaces"
    except ModuleNotFoundError:
        # A source checkout whose editable install predates the profiles mapping: use the folder in the tree.
        tree = Path(__file__).resolve().parents[2] / "search" / "spaces"
        if tree.is_dir():
            return tree
        raise SearchError("the packaged search spaces (edgeskd.profiles) are missing from this installation; "
                          "reinstall edgeskd") from None


def list_spaces() -> list[str]:
    return sorted(p.stem for p in spaces_dir().glob("*.yaml"))


def resolve_space(name_or_path: str) -> Path:
    """A file path, or the name of a shipped space (efficientnet, vit, convnext, resnet, demo)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SearchError(f"search space file {path} does not exist")
        return path
    shipped = spaces_dir() / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise SearchError(f"unknown search space {name_or_path!r}: not a file, and not a shipped space "
                          f"({', '.join(list_spaces())})")
    return shipped


def default_space_for(family: str) -> Path:
    return resolve_space(family)


def load_space(name_or_path: str | Path) -> SearchSpace:
    path = resolve_space(str(name_or_path))
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SearchError(f"cannot read search space {path}: {exc}") from exc
    return parse_space(raw, str(path))


def parse_space(raw: Any, source: str) -> SearchSpace:
    def fail(key: str, problem: str) -> SearchError:
        return SearchError(f"search space {source}: key '{key}': {problem}")

    if not isinstance(raw, dict):
        raise SearchError(f"search space {source}: expected a mapping at the top level, got {type(raw).__name__}")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise fail(sorted(unknown)[0], f"unknown key; expected some of {sorted(TOP_KEYS)}")
    for key in ("family", "student", "strategies", "schedule"):
        if key not in raw:
            raise fail(key, "missing (required)")
    family = raw["family"]
    if not isinstance(family, str):
        raise fail("family", f"expected a family name string, got {family!r}")

    student_raw = _mapping(raw["student"], "student", fail)
    bad = set(student_raw) - set(STUDENT_KEYS)
    if bad:
        raise fail(f"student.{sorted(bad)[0]}", f"unknown student dimension; expected {list(STUDENT_KEYS)}")
    student = {k: _param(k, v, f"student.{k}", fail) for k, v in student_raw.items()}
    for key in ("depth", "width"):
        for v in student.get(key, Param(key, 1.0)).values():
            if not isinstance(v, (int, float)) or not 0 < v <= 1:
                raise fail(f"student.{key}", f"multipliers must be numbers in (0, 1]; got {v!r}")
    for v in student.get("resolution", Param("resolution", 224)).values():
        if not isinstance(v, int) or isinstance(v, bool) or v < 16:
            raise fail("student.resolution", f"resolutions must be integers >= 16 pixels; got {v!r}")

    strategies_raw = raw["strategies"]
    if not isinstance(strategies_raw, list) or not strategies_raw:
        raise fail("strategies", "expected a non-empty list of [strategy_a, strategy_b] pairs")
    strategies = []
    for i, pair in enumerate(strategies_raw):
        if (not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(s, str) and s for s in pair)
                or any(PAIR_SEPARATOR.strip() in s for s in pair)):
            raise fail(f"strategies[{i}]", f"expected a pair of strategy names [A, B] (no '|'), got {pair!r}")
        strategies.append((pair[0], pair[1]))

    train_raw = _mapping(raw.get("train", {}), "train", fail)
    train = {k: _param(k, v, f"train.{k}", fail) for k, v in train_raw.items()}
    clash = set(train) & (set(STUDENT_KEYS) | {"strategies", "strategy_a", "strategy_b"})
    if clash:
        raise fail(f"train.{sorted(clash)[0]}", "is not a training field (student and strategies have their own keys)")
    for name, p in train.items():
        if p.log and (p.low is None or p.low <= 0):
            raise fail(f"train.{name}", "log ranges need low > 0")

    fixed = dict(_mapping(raw.get("fixed", {}), "fixed", fail))
    if set(fixed) & set(train):
        raise fail(f"fixed.{sorted(set(fixed) & set(train))[0]}", "is also searched under 'train'")

    schedule_raw = _mapping(raw["schedule"], "schedule", fail)
    for key in ("trial", "final"):
        if key not in schedule_raw:
            raise fail(f"schedule.{key}", "missing (required: epochs for each trial and for the winner)")
        entry = _mapping(schedule_raw[key], f"schedule.{key}", fail)
        for k, v in entry.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise fail(f"schedule.{key}.{k}", f"expected a non-negative integer, got {v!r}")
    if set(schedule_raw) - {"trial", "final"}:
        raise fail(f"schedule.{sorted(set(schedule_raw) - {'trial', 'final'})[0]}", "expected only 'trial' and 'final'")

    pruner = dict(_mapping(raw.get("pruner", {"type": "median"}), "pruner", fail))
    if pruner.get("type", "median") not in PRUNERS:
        raise fail("pruner.type", f"expected one of {sorted(PRUNERS)}, got {pruner.get('type')!r}")
    pruner.setdefault("type", "median")

    sampler = raw.get("sampler", "tpe")
    from edgeskd.search.sampler import check_sampler

    has_range = any(isinstance(v, dict) and "low" in v for part in ("student", "train")
                    for v in (raw.get(part) or {}).values())
    check_sampler(sampler, has_numeric_range=has_range, pareto=False, source=source)

    return SearchSpace(source=source, family=family, student=student, strategies=tuple(strategies), train=train,
                       fixed=fixed, schedule=Schedule(dict(schedule_raw["trial"]), dict(schedule_raw["final"])),
                       pruner=pruner, description=str(raw.get("description", "")), sampler=sampler,
                       deploy=parse_deploy(raw["deploy"], fail) if raw.get("deploy") is not None else None)


def _mapping(value: Any, key: str, fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, f"expected a mapping, got {type(value).__name__}")
    return value


def _param(name: str, spec: Any, key: str, fail) -> Param:
    if not isinstance(spec, dict):
        if isinstance(spec, (list, tuple)):
            raise fail(key, "write a list of options as {choices: [...]}")
        return Param(name, value=spec)
    unknown = set(spec) - {"choices", "low", "high", "log", "step"}
    if unknown:
        raise fail(key, f"unknown field {sorted(unknown)[0]!r}; expected choices, or low/high [log, step]")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise fail(key, "use either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise fail(key, "choices must be a non-empty list")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise fail(key, f"choices must be numbers, strings, booleans or null; got {choices!r}")
        return Param(name, choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise fail(key, "a range needs both low and high")
    low, high = spec["low"], spec["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise fail(key, f"low and high must be finite numbers; got {low!r}, {high!r}")
    if low > high:
        raise fail(key, f"low {low} is above high {high}")
    step = spec.get("step")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0):
        raise fail(key, f"step must be a positive number; got {step!r}")
    if spec.get("log") and step is not None:
        raise fail(key, "a log range cannot have a step")
    return Param(name, low=low, high=high, log=bool(spec.get("log", False)), step=step)
