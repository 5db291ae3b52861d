"""One search trial: sample -> (known over budget: refuse; seen before: reuse) -> measure unless mapped ->
(over budget: prune, untrained) -> train with dual SKD.

Latency does not depend on weights, so every candidate's latency is known before any training: from the latency
map (edgeskd.search.latency_map) or measured right after it is built. An architecture the map already knows to be
over budget is refused without building it, and a full configuration evaluated before is not trained again (its
result is reused); neither counts against --trials (edgeskd.search.records.COUNTED). Everything a report or a later
analysis needs is stored on the trial as a TrialRecord (user attributes, readable in optuna-dashboard).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeskd.errors import EdgeskdError, SearchError
from edgeskd.search.config import SearchConfig
from edgeskd.search.latency_map import candidate_key, refresh, store_entry
from edgeskd.search.records import (COMPLETED, FAILED, OVER_BUDGET, PRUNED_BY_METRIC, REFUSED, REUSED, TrialRecord,
                                    outcome_of)
from edgeskd.search.sampler import record_constraint
from edgeskd.search.space import SearchSpace, load_space
from edgeskd.search.stages import Stages, load_stages

__all__ = ["SearchContext", "make_objective", "latency_attrs", "pick_metric", "COMPLETED", "FAILED", "OVER_BUDGET",
           "PRUNED_BY_METRIC"]


@dataclass
class SearchContext:
    """Everything a worker process loads once and every trial reuses."""

    config: SearchConfig
    space: SearchSpace
    stages: Stages
    data: Any
    teacher: Any
    target: Any
    cache: Any
    num_classes: int
    run_dir: Path
    latency_map: Any = None          # LatencyMap, set by the driver (built) or the worker (loaded)

    @classmethod
    def load(cls, config: SearchConfig, stages: Stages | None = None) -> SearchContext:
        stages = stages or load_stages(config.stages)
        space = load_space(config.space)
        data = stages.load_data(config.data, seed=config.seed, **config.data_options())
        classes = list(data.train.classes)
        teacher = stages.load_teacher(config.teacher, config.teacher_weights,
                                      teacher_num_classes=config.teacher_num_classes)
        target = stages.get_target(config.target)
        run_dir = Path(config.run_dir)
        cache = stages.latency_cache(run_dir / "latency_cache.sqlite")
        return cls(config, space, stages, data, teacher, target, cache, len(classes), run_dir)

    def student_spec(self, student: dict[str, Any]):
        from edgeskd.models import StudentSpec

        return StudentSpec(teacher=self.config.teacher, num_classes=self.num_classes, **student)


def latency_attrs(measurement: Any) -> dict[str, Any]:
    """The measurement as JSON values: statistics, sample count and fingerprint."""
    stats = {k: float(v) for k, v in dict(measurement.stats).items() if isinstance(v, (int, float))}
    fingerprint = getattr(measurement, "fingerprint", None)
    if hasattr(fingerprint, "to_dict"):
        fingerprint = fingerprint.to_dict()
    return {"latency_ms": stats, "fingerprint": fingerprint if isinstance(fingerprint, (dict, str)) else str(fingerprint),
            "latency_samples": len(getattr(measurement, "samples_ms", []) or [])}


def pick_metric(metrics: dict[str, Any], name: str) -> float:
    """The validation metric `name` from a training result (accepts 'accuracy' or 'val_accuracy' spellings)."""
    for key in (name, f"val_{name}", f"val/{name}"):
        if key in metrics and isinstance(metrics[key], (int, float)):
            return float(metrics[key])
    val = metrics.get("val")
    if isinstance(val, dict) and isinstance(val.get(name), (int, float)):
        return float(val[name])
    raise SearchError(f"training reported no validation metric {name!r}; it reported {sorted(metrics)}")


def make_objective(ctx: SearchContext):
    cfg, stages = ctx.config, ctx.stages

    def objective(trial) -> float | tuple[float, float]:
        import optuna

        started = time.perf_counter()
        record = TrialRecord()
        lmap = ctx.latency_map
        try:
            offered = lmap.feasible() if lmap is not None and lmap.complete else None
            student, train_values = ctx.space.sample(trial, offered)
            train_values.setdefault("monitor", cfg.metric)  # the trainer reports what the search maximises
            spec = ctx.student_spec(student)
            record.student, record.train_config = spec.to_dict(), train_values
            record.candidate = candidate_key(student)
            record.save(trial, "student", "train_config", "candidate")
            if lmap is not None and not lmap.complete:
                refresh(lmap, trial.study)
            entry = lmap.get(record.candidate) if lmap is not None else None

            # 1. Known over budget: refused before anything is built; the constraint tells the sampler.
            if entry is not None and not entry.ok:
                record.outcome, record.latency_ms, record.pruned_reason = REFUSED, entry.latency_ms, entry.reason
                record.parameters, record.macs, record.probe_seconds, record.train_seconds = \
                    entry.parameters, entry.macs, 0.0, 0.0
                record.save(trial)
                record_constraint(trial, entry.latency_ms.get(cfg.statistic), cfg.latency_ms)
                raise optuna.TrialPruned(f"known over budget: {entry.reason}")

            # 2. The same full configuration was evaluated before: reuse its result, do not train again.
            earlier = _earlier_result(trial)
            if earlier is not None:
                return _reuse(trial, record, earlier, cfg)

            # 3. Probe: from the map, or build untrained, count, measure on the target (cached by architecture).
            if entry is not None:
                record.parameters, record.macs, record.latency_ms = entry.parameters, entry.macs, entry.latency_ms
                ok, reason, probe_s = True, entry.reason, 0.0
            else:
                model = stages.build_student(spec, ctx.teacher)
                profile = stages.profile(model, spec.resolution)
                record.parameters, record.macs = int(profile.parameters), int(profile.macs)
                measurement = stages.measure(model, spec.resolution, ctx.target, ctx.cache)
                for key, value in latency_attrs(measurement).items():
                    setattr(record, key, value)
                ok, reason = stages.check_budget(measurement, cfg.latency_ms, cfg.statistic, ctx.target)
                probe_s = time.perf_counter() - started
                del model
                if lmap is not None:  # others will not measure it again
                    from edgeskd.search.latency_map import MapEntry

                    new = MapEntry(record.candidate, dict(student), None, record.parameters, record.macs,
                                   record.latency_ms, bool(ok), str(reason), round(probe_s, 3))
                    store_entry(trial.study, new)
                    lmap.entries[new.key] = new
            record.probe_seconds = round(probe_s, 3)
            record_constraint(trial, record.latency_ms.get(cfg.statistic), cfg.latency_ms)
            record.save(trial, "parameters", "macs", "latency_ms", "fingerprint", "latency_samples", "probe_seconds")
            if not ok:
                record.outcome, record.pruned_reason, record.train_seconds = OVER_BUDGET, str(reason), 0.0
                record.save(trial, "outcome", "pruned_reason", "train_seconds")
                raise optuna.TrialPruned(f"over budget: {reason}")

            # 2. Train with intermediate validation metrics, which the pruner may stop early.
            def report(step: int, value: float) -> None:
                if cfg.pareto:  # Optuna's pruners do not support multi-objective studies
                    return
                trial.report(float(value), int(step))
                if trial.should_prune():
                    record.outcome = PRUNED_BY_METRIC
                    record.pruned_reason = (f"val {cfg.metric} {value:.4f} at step {step} below the pruner's "
                                            f"threshold")
                    record.train_seconds = round(time.perf_counter() - started - probe_s, 3)
                    record.save(trial, "outcome", "pruned_reason", "train_seconds")
                    raise optuna.TrialPruned(f"pruned at step {step}")

            trial_dir = ctx.run_dir / "trials" / str(trial.number)
            config = stages.train_config(train_values)
            train_started = time.perf_counter()
            result = stages.train(spec, ctx.data, ctx.teacher, config, out_dir=trial_dir, report=report,
                                  resume=False, progress=False)
            metric = pick_metric(dict(result.metrics), cfg.metric)
            record.train_seconds = round(time.perf_counter() - train_started, 3)
            val = dict(result.metrics).get("val") or {}
            record.val_metrics = {k: v for k, v in val.items() if isinstance(v, (int, float))}
            record.outcome = COMPLETED
            record.save(trial, "train_seconds", "val_metrics", "outcome")
            if cfg.pareto:
                return metric, float(record.latency_ms[cfg.statistic])
            return metric
        except optuna.TrialPruned:
            raise
        except EdgeskdError as exc:
            # A candidate this configuration cannot build or train: recorded, not retried, the search goes on.
            record.outcome, record.error = FAILED, f"{type(exc).__name__}: {exc}"
            record.save(trial, "outcome", "error")
            raise
        finally:
            record.seconds = round(time.perf_counter() - started, 3)
            record.save(trial, "seconds")

    return objective


def _earlier_result(trial):
    """The first finished trial with exactly these parameters that trained (or reused a training), else None."""
    from optuna.trial import TrialState

    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number != trial.number and t.params == trial.params and \
                outcome_of(t) in (COMPLETED, PRUNED_BY_METRIC, REUSED):
            return t
    return None


def _reuse(trial, record: TrialRecord, earlier, cfg: SearchConfig):
    """Repeat an earlier trial's result without training: its value (completed) or its curve (pruned)."""
    import optuna

    first = TrialRecord.from_trial(earlier)
    record.outcome = REUSED
    record.reused_from = first.reused_from if first.reused_from is not None else first.number
    record.parameters, record.macs, record.latency_ms = first.parameters, first.macs, first.latency_ms
    record.probe_seconds, record.train_seconds = 0.0, 0.0
    record.pruned_reason = f"same configuration as trial {record.reused_from}"
    record.save(trial)
    record_constraint(trial, (first.latency_ms or {}).get(cfg.statistic), cfg.latency_ms)
    if first.values is None:  # the original was pruned: give the pruner the same curve, end the same way
        if not cfg.pareto:
            for step, value in sorted(first.intermediate.items()):
                trial.report(value, step)
        raise optuna.TrialPruned(record.pruned_reason)
    return first.values if cfg.pareto else first.values[0]
