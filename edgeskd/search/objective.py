"""One search trial: build -> measure on the target -> (over budget: prune, untrained) -> train with dual SKD.

Latency does not depend on weights, so every candidate is measured right after it is built, before any training,
and an over-budget candidate is pruned at zero training cost. Everything a report or a later analysis needs is
stored on the trial as user attributes (JSON values, readable in optuna-dashboard).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeskd.errors import EdgeskdError, SearchError
from edgeskd.search.config import SearchConfig
from edgeskd.search.space import SearchSpace, load_space
from edgeskd.search.stages import Stages, load_stages
from edgeskd.search.storage import ERROR

# user attribute "outcome" of a finished trial
OVER_BUDGET = "pruned-latency"
PRUNED_BY_METRIC = "pruned-metric"
COMPLETED = "completed"
FAILED = "failed"


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
        try:
            student, train_values = ctx.space.sample(trial)
            train_values.setdefault("monitor", cfg.metric)  # the trainer reports what the search maximises
            spec = ctx.student_spec(student)
            trial.set_user_attr("student", spec.to_dict())
            trial.set_user_attr("train_config", train_values)

            # 1. Probe: build untrained, count, measure on the target (cached by architecture).
            model = stages.build_student(spec, ctx.teacher)
            profile = stages.profile(model, spec.resolution)
            trial.set_user_attr("parameters", int(profile.parameters))
            trial.set_user_attr("macs", int(profile.macs))
            measurement = stages.measure(model, spec.resolution, ctx.target, ctx.cache)
            for key, value in latency_attrs(measurement).items():
                trial.set_user_attr(key, value)
            ok, reason = stages.check_budget(measurement, cfg.latency_ms, cfg.statistic, ctx.target)
            probe_s = time.perf_counter() - started
            trial.set_user_attr("probe_seconds", round(probe_s, 3))
            del model
            if not ok:
                trial.set_user_attr("outcome", OVER_BUDGET)
                trial.set_user_attr("pruned_reason", str(reason))
                trial.set_user_attr("train_seconds", 0.0)
                raise optuna.TrialPruned(f"over budget: {reason}")

            # 2. Train with intermediate validation metrics, which the pruner may stop early.
            def report(step: int, value: float) -> None:
                if cfg.pareto:  # Optuna's pruners do not support multi-objective studies
                    return
                trial.report(float(value), int(step))
                if trial.should_prune():
                    trial.set_user_attr("outcome", PRUNED_BY_METRIC)
                    trial.set_user_attr("pruned_reason", f"val {cfg.metric} {value:.4f} at step {step} below the "
                                                         f"pruner's threshold")
                    trial.set_user_attr("train_seconds", round(time.perf_counter() - started - probe_s, 3))
                    raise optuna.TrialPruned(f"pruned at step {step}")

            trial_dir = ctx.run_dir / "trials" / str(trial.number)
            config = stages.train_config(train_values)
            train_started = time.perf_counter()
            result = stages.train(spec, ctx.data, ctx.teacher, config, out_dir=trial_dir, report=report,
                                  resume=False, progress=False)
            metric = pick_metric(dict(result.metrics), cfg.metric)
            trial.set_user_attr("train_seconds", round(time.perf_counter() - train_started, 3))
            val = dict(result.metrics).get("val") or {}
            trial.set_user_attr("val_metrics", {k: v for k, v in val.items() if isinstance(v, (int, float))})
            trial.set_user_attr("outcome", COMPLETED)
            if cfg.pareto:
                return metric, float(measurement.stats[cfg.statistic])
            return metric
        except optuna.TrialPruned:
            raise
        except EdgeskdError as exc:
            # A candidate this configuration cannot build or train: recorded, not retried, the search goes on.
            trial.set_user_attr("outcome", FAILED)
            trial.set_user_attr(ERROR, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))

    return objective
