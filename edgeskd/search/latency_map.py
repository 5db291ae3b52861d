"""The latency map: every candidate architecture measured on the target BEFORE the first training.

Latency does not depend on weights, so a discrete space (only lists of choices for the student) is mapped completely
up front, and only the under-budget candidates are offered to the sampler (edgeskd.search.space.SearchSpace.sample).
A continuous space is mapped on a seeded sample; the rest is measured by the trials themselves and added as they go.

With deploy choices (runtime:precision, edgeskd.search.deployment) the map is of every architecture x deployment,
each measured on its own deployment's target (int8: its calibrated artifact); the sampler is offered the
architectures under budget for at least one deployment, and a sampled pair the map knows to be over budget is refused
before anything is built (edgeskd.search.objective).

Measuring all of a grid would cost more than the trials' own probes did, so the map uses the one property latency
has here: it does not fall when depth, width or resolution grows. A candidate at least as large in every dimension
as one measured over budget is over budget; one at most as large as one measured under budget is under budget.
The map measures candidates in the order that settles the most others (a binary search over the grid's partial
order), builds each measured one untrained (latency cache answers repeats across runs), and records every other as
inferred from the measured one (`inferred_from`). A candidate inferred under budget is trained without a probe of
its own; the winner is measured afresh before its final training (edgeskd.search.winner), which catches a candidate
that was under budget only by inference. Pareto searches need each trial's latency, so there only the over-budget
side is inferred. Dominance is only ever used within one deployment: another runtime or precision says nothing
about this one.

Entries live in the study storage (one study user attribute per candidate, so concurrent writers never overwrite
each other): every worker and every resumed run reads them instead of measuring again, so K workers measure each
candidate once in total. A copy is written to the run folder as latency_map.json for the report and for people.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeskd._io import atomic_write_json
from edgeskd.errors import SearchError

MAP_NAME = "latency_map.json"
# The map only needs over/under: a candidate whose pilot window (PILOT_S of timed runs) is already SETTLE_MARGIN
# times over or under the budget is settled there; one near the budget gets the full protocol. The winner is always
# measured again with the full protocol before its final training.
SETTLE_MARGIN = 1.25
PILOT_S = 0.25
ATTR_PREFIX = "latency_map:"   # study user attribute per candidate: ATTR_PREFIX + key
SAMPLE_SIZE = 16               # architectures measured up front in a continuous space


def candidate_key(student: dict[str, Any], deployment: dict[str, Any] | None = None) -> str:
    """A stable name for an architecture (x deployment choice), e.g. 'd0.5 w1.0 r64' or 'd0.5 w1.0 r64 ort fp16'."""
    key = " ".join(f"{name[0]}{student[name]:g}" if isinstance(student[name], (int, float)) else
                   f"{name[0]}{student[name]}" for name in sorted(student))
    if deployment:
        key += " " + " ".join(str(deployment[k]) for k in sorted(deployment))
    return key


@dataclass(frozen=True)
class MapEntry:
    key: str
    student: dict[str, Any]
    deployment: dict[str, Any] | None
    parameters: int
    macs: int
    latency_ms: dict[str, float]
    ok: bool
    reason: str
    probe_seconds: float
    inferred_from: str | None = None   # not measured: decided by dominance from this measured candidate
    settled_early: bool = False        # measured for the pilot window only: clearly over or under the budget

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MapEntry:
        return cls(**data)

    @property
    def measured(self) -> bool:
        return self.inferred_from is None


@dataclass
class LatencyMap:
    entries: dict[str, MapEntry]
    complete: bool          # every candidate of the space is in it: the sampler sees only the feasible ones
    statistic: str
    budget_ms: float
    seconds: float = 0.0    # wall time this invocation spent measuring (0 when everything came from the study)
    measured: int = 0       # candidates this invocation measured

    def feasible(self) -> dict[str, dict[str, Any]]:
        """Architectures under budget for at least one deployment: architecture key -> student kwargs (what the
        sampler is offered; a (student, deployment) pair over budget is refused by the objective)."""
        return {candidate_key(e.student): dict(e.student) for e in self.entries.values() if e.ok}

    def get(self, key: str) -> MapEntry | None:
        return self.entries.get(key)

    def fastest(self) -> MapEntry | None:
        measured = [e for e in self.entries.values() if e.measured]
        return min(measured, key=lambda e: e.latency_ms.get(self.statistic, float("inf")), default=None)

    def lookup(self, student: dict[str, Any], deployment: dict[str, Any] | None = None) -> MapEntry | None:
        """The entry for this candidate, or for a continuous space, an over-budget verdict inferred from a measured
        candidate it dominates (so a sampled architecture that cannot fit is refused without being built)."""
        key = candidate_key(student, deployment)
        if key in self.entries:
            return self.entries[key]
        for e in self.entries.values():
            if e.measured and not e.ok and e.deployment == deployment and _at_most(e.student, student):
                return _inferred(key, student, deployment, e, ok=False)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "budget_ms": self.budget_ms, "complete": self.complete,
                "seconds": round(self.seconds, 3), "measured_here": self.measured,
                "feasible": sum(e.ok for e in self.entries.values()), "size": len(self.entries),
                "deployments": sorted({deploy_label(e.deployment) for e in self.entries.values() if e.deployment}),
                "measured": sum(e.measured for e in self.entries.values()),
                "settled_early": sum(e.settled_early for e in self.entries.values()),
                "entries": [asdict(e) for e in sorted(self.entries.values(),
                                                      key=lambda e: e.latency_ms.get(self.statistic, 0.0))]}


def deploy_label(deployment: dict[str, Any] | None) -> str | None:
    """'runtime:precision' of an entry's deployment (None: the configured target)."""
    return f"{deployment['runtime']}:{deployment['precision']}" if deployment else None


def deploy_choices(ctx) -> list[tuple[Any, dict[str, Any] | None]]:
    """(Deployment, its key in candidate names) for every deploy choice, or the configured target alone."""
    return [(d, {"runtime": d.runtime, "precision": d.precision}) for d in ctx.deployments] or [(None, None)]


def stored_entries(study) -> dict[str, MapEntry]:
    return {k.removeprefix(ATTR_PREFIX): MapEntry.from_dict(v) for k, v in study.user_attrs.items()
            if k.startswith(ATTR_PREFIX)}


def store_entry(study, entry: MapEntry) -> None:
    study.set_user_attr(ATTR_PREFIX + entry.key, asdict(entry))


def candidates(space, seed: int) -> tuple[list[dict[str, Any]], bool]:
    """(students to map, complete?): all of a discrete space, or a seeded sample of a continuous one."""
    if space.discrete_student:
        return space.architectures(), True
    rng = random.Random(seed)
    picks, seen = [], set()
    for _ in range(SAMPLE_SIZE * 4):
        student = {name: _draw(p, rng) for name, p in space.student.items()}
        key = candidate_key(student)
        if key not in seen:
            seen.add(key)
            picks.append(student)
        if len(picks) == SAMPLE_SIZE:
            break
    return picks, False


def _draw(p, rng: random.Random) -> Any:
    import math

    if p.choices is not None:
        return rng.choice(list(p.choices))
    if p.low is None:
        return p.value
    if p.is_int:
        step = int(p.step or 1)
        return int(p.low) + step * rng.randrange((int(p.high) - int(p.low)) // step + 1)
    if p.log:
        return math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    if p.step:
        return p.low + p.step * rng.randrange(int(round((p.high - p.low) / p.step)) + 1)
    return rng.uniform(p.low, p.high)


def _at_most(small: dict[str, Any], big: dict[str, Any]) -> bool:
    """`small` is no larger than `big` in every student dimension (latency cannot be higher)."""
    return all(small[k] <= big[k] for k in small)


def _inferred(key: str, student: dict[str, Any], deployment, source: MapEntry, *, ok: bool) -> MapEntry:
    relation = "at most" if ok else "at least"
    return MapEntry(key=key, student=dict(student), deployment=deployment, parameters=0, macs=0, latency_ms={},
                    ok=ok, reason=f"{relation} as large as {source.key} ({source.reason}): inferred, not measured",
                    probe_seconds=0.0, inferred_from=source.key)


def _settle(pending: list[dict[str, Any]], entries: dict[str, MapEntry], infer_ok: bool,
            deployment: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Decide what the measured entries OF THIS DEPLOYMENT imply; return the students still undecided."""
    measured = [e for e in entries.values() if e.measured and e.deployment == deployment]
    left = []
    for s in pending:
        key = candidate_key(s, deployment)
        over = next((e for e in measured if not e.ok and _at_most(e.student, s)), None)
        under = next((e for e in measured if e.ok and _at_most(s, e.student)), None) if infer_ok else None
        if over is not None:
            entries[key] = _inferred(key, s, deployment, over, ok=False)
        elif under is not None:
            entries[key] = _inferred(key, s, deployment, under, ok=True)
        else:
            left.append(s)
    return left


def _most_telling(pending: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate whose measurement settles the most others whichever way it goes (ties: the first)."""
    def score(s: dict[str, Any]) -> int:
        return min(sum(_at_most(s, o) for o in pending), sum(_at_most(o, s) for o in pending))

    return max(pending, key=score)


def measure_entry(ctx, student: dict[str, Any], deployment: Any = None) -> MapEntry:
    """Build untrained, count, measure on the deployment's target (its artifact, through the latency cache) and
    check the budget. `deployment`: a Deployment of ctx.deployments, or None for the configured target."""
    from edgeskd.search.objective import latency_attrs

    cfg, stages = ctx.config, ctx.stages
    started = time.perf_counter()
    spec = ctx.student_spec(student)
    target = ctx.target_of(deployment)
    model = stages.build_student(spec, ctx.teacher)
    profile = stages.profile(model, spec.resolution)
    # Pareto searches use every trial's latency as an objective: there each candidate gets the full protocol
    settle = None if cfg.pareto else {"budget_ms": cfg.latency_ms, "statistic": cfg.statistic,
                                      "margin": SETTLE_MARGIN, "pilot_s": PILOT_S}
    measurement = stages.measure(model, spec.resolution, target, ctx.cache, settle=settle,
                                 **ctx.measure_options(deployment, spec))
    ok, reason = stages.check_budget(measurement, cfg.latency_ms, cfg.statistic, target)
    early = measurement.info.get("settled_early")
    if early:
        reason = f"{reason}; settled after the {PILOT_S:g} s pilot ({early['ratio']:.2f}x the budget)"
    deploy_key = {"runtime": deployment.runtime, "precision": deployment.precision} if deployment else None
    return MapEntry(key=candidate_key(student, deploy_key), student=dict(student), deployment=deploy_key,
                    parameters=int(profile.parameters), macs=int(profile.macs),
                    latency_ms=latency_attrs(measurement)["latency_ms"], ok=bool(ok), reason=str(reason),
                    probe_seconds=round(time.perf_counter() - started, 3), settled_early=bool(early))


def build_map(ctx, study, *, log=None) -> LatencyMap:
    """Read the study's entries, measure what is missing, store each new entry as soon as it is known."""
    cfg = ctx.config
    wanted, complete = candidates(ctx.space, cfg.seed)
    entries = stored_entries(study)
    started, measured = time.perf_counter(), 0
    numeric = all(isinstance(v, (int, float)) for s in wanted for v in s.values())
    choices = deploy_choices(ctx)
    total = len(wanted) * len(choices)
    for deployment, deploy_key in choices:  # each deployment its own map: no inference across them
        pending = [s for s in wanted if candidate_key(s, deploy_key) not in entries]
        while pending:
            if numeric:  # dominance needs ordered dimensions
                before = set(entries)
                pending = _settle(pending, entries, not cfg.pareto, deploy_key)
                for key in set(entries) - before:
                    store_entry(study, entries[key])
                if not pending:
                    break
            student = _most_telling(pending) if numeric else pending[0]
            pending.remove(student)
            entry = measure_entry(ctx, student, deployment)
            store_entry(study, entry)
            entries[entry.key] = entry
            measured += 1
            if log:
                log(f"latency map: measured {entry.key} {cfg.statistic} "
                    f"{entry.latency_ms.get(cfg.statistic, float('nan')):.3f} ms "
                    f"{'ok' if entry.ok else 'over budget'} ({len(entries)}/{total} candidates known)")
    latency_map = LatencyMap(entries, complete, cfg.statistic, cfg.latency_ms, time.perf_counter() - started,
                             measured)
    save_map(latency_map, Path(cfg.run_dir))
    return latency_map


def load_map(ctx, study) -> LatencyMap:
    """A worker's view: the entries the search stored (workers never measure the map themselves)."""
    _, complete = candidates(ctx.space, ctx.config.seed)
    entries = stored_entries(study)
    total = len(ctx.space.architectures()) * len(deploy_choices(ctx)) if complete else 0
    if complete and len(entries) < total:
        raise SearchError(f"the latency map of study {ctx.config.study!r} is incomplete ({len(entries)} of "
                          f"{total} architecture x deployment candidates); start workers through `edgeskd search`")
    return LatencyMap(entries, complete, ctx.config.statistic, ctx.config.latency_ms)


def refresh(latency_map: LatencyMap, study) -> None:
    """Take entries other workers added (continuous spaces map as they go)."""
    for key, entry in stored_entries(study).items():
        latency_map.entries.setdefault(key, entry)


def save_map(latency_map: LatencyMap, run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / MAP_NAME, latency_map.to_dict())
    return run_dir / MAP_NAME
