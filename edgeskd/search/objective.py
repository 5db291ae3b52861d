"""One search trial: sample (architecture x deployment) -> (known over budget: refuse; seen before: reuse) ->
convert to the trial's runtime/precision and measure that artifact unless mapped -> (over budget: prune, untrained)
-> train with dual SKD -> judge the trained model through its deployed artifact.

Latency does not depend on weights, so every candidate's latency is known before any training: from the latency
map (edgeskd.search.latency_map) or measured right after it is built. An architecture the map already knows to be
over budget is refused without building it, and a full configuration evaluated before is not trained again (its
result is reused); neither counts against --trials (edgeskd.search.records.COUNTED). The trial's value is the
validation metric of the artifact the device will run (int8 and bf16 change predictions); the PyTorch fp32 metric
is kept beside it. Everything a report or a later analysis needs is stored on the trial as a TrialRecord.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeskd.errors import EdgeskdError, SearchError
from edgeskd.search.config import SearchConfig
from edgeskd.search.latency_map import candidate_key, refresh, store_entry
from edgeskd.search.records import (COMPLETED, FAILED, OVER_BUDGET, PRUNED_BY_METRIC, REFUSED, REUSED, SURPLUS,
                                    TrialRecord, claim_slot, outcome_of)
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
    deployments: list[Any] = field(default_factory=list)   # kept Deployment choices; empty: the target alone
    deploy_lines: list[str] = field(default_factory=list)  # kept/dropped combinations with reasons (printed once)
    calibration_images: int = 0
    _calibration: dict[str, Any] = field(default_factory=dict)

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
        deployments, lines, n_cal = resolve_deploy(config, space)
        return cls(config, space, stages, data, teacher, target, cache, len(classes), run_dir,
                   deployments=deployments, deploy_lines=lines, calibration_images=n_cal)

    def target_of(self, deployment: Any) -> Any:
        """The latency target of a deployment (the configured target when the search has no deploy choices)."""
        if deployment is None:
            return self.target
        from edgeskd.search.deployment import deployment_target

        return deployment_target(deployment, self.target)

    def target_deployment(self) -> Any:
        """Without deploy choices: the configured target as a deployment, when it runs an artifact built here
        (ONNX Runtime, OpenVINO); None otherwise (torch, remote: judged by the PyTorch metric, as recorded)."""
        from edgeskd.search.deployment import TARGET_OF, Deployment

        runtime = getattr(self.target, "runtime", None)
        if runtime not in ("onnxruntime", "openvino") or runtime not in TARGET_OF:
            return None
        return Deployment(runtime, self.target.precision)

    def calibration(self, deployment: Any, preprocess: Any) -> Any:
        """Int8 calibration images from the training split, preprocessed as `preprocess` (cached per spec); None
        for other precisions."""
        if deployment is None or deployment.precision != "int8":
            return None
        import json

        from edgeskd.search.deployment import calibration_set

        key = json.dumps(preprocess.to_dict(), sort_keys=True)
        if key not in self._calibration:
            self._calibration[key] = calibration_set(self.data.train, preprocess, self.calibration_images,
                                                     self.config.seed)
        return self._calibration[key]

    def measure_options(self, deployment: Any, spec: Any) -> dict[str, Any]:
        """Extra keywords for stages.measure on a deployment: int8 artifacts need their calibration images."""
        if deployment is None or deployment.precision != "int8":
            return {}
        from edgeskd.data.preprocess import PreprocessSpec

        pre = PreprocessSpec.for_model(self.teacher, size=spec.resolution, channels=spec.in_chans)
        return {"calibration": self.calibration(deployment, pre)}

    def student_spec(self, student: dict[str, Any]):
        from edgeskd.models import StudentSpec

        return StudentSpec(teacher=self.config.teacher, num_classes=self.num_classes, **student)


def resolve_deploy(config: SearchConfig, space: SearchSpace) -> tuple[list[Any], list[str], int]:
    """The deployment choices this device supports (space deploy: section, or the config's runtimes/precisions
    overrides), with one line per combination kept or dropped and why."""
    from edgeskd.search.deployment import DeploySpace, describe_filter, filter_deployments, parse_deploy

    deploy = space.deploy
    if config.runtimes or config.precisions:
        def fail(key: str, problem: str) -> SearchError:
            return SearchError(f"search config: {key.replace('deploy.', '--')}: {problem}")

        base = deploy.to_dict() if deploy else {"runtimes": ["ort"], "precisions": ["fp32"]}
        split = lambda text: [v.strip() for v in text.split(",") if v.strip()]  # noqa: E731
        deploy = parse_deploy({**base, **({"runtimes": split(config.runtimes)} if config.runtimes else {}),
                               **({"precisions": split(config.precisions)} if config.precisions else {})}, fail)
    if not isinstance(deploy, DeploySpace):
        return [], [], 0
    kept, dropped = filter_deployments(deploy)
    lines = describe_filter(kept, dropped)
    if not kept:
        raise SearchError("no deployment in the search space is supported on this device: " + "; ".join(lines))
    return kept, lines, deploy.calibration_images


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
        # The map covers every architecture x deployment: the sampler is offered architectures under budget for at
        # least one deployment, and a sampled pair the map knows to be over budget is refused below.
        lmap = ctx.latency_map
        try:
            offered = lmap.feasible() if lmap is not None and lmap.complete else None
            student, train_values = ctx.space.sample(trial, offered)
            train_values.setdefault("monitor", cfg.metric)  # the trainer reports what the search maximises
            spec = ctx.student_spec(student)
            record.student, record.train_config = spec.to_dict(), train_values
            # The deployment choice (runtime:precision) among those this device supports.
            deployment, deploy_key = None, None
            if ctx.deployments:
                from edgeskd.search.deployment import Deployment

                deployment = Deployment.parse(trial.suggest_categorical("deploy", [d.label for d in ctx.deployments]))
                deploy_key = {"runtime": deployment.runtime, "precision": deployment.precision}
                record.deployment = {**deploy_key, "label": deployment.label}
            target = ctx.target_of(deployment)
            judged_on = deployment or ctx.target_deployment()
            record.candidate = candidate_key(student, deploy_key)
            record.save(trial, "student", "train_config", "candidate", *(["deployment"] if deployment else []))
            if lmap is not None and not lmap.complete:
                refresh(lmap, trial.study)
            entry = lmap.lookup(student, deploy_key) if lmap is not None else None

            # 1. Known over budget: refused before anything is built; the constraint tells the sampler.
            if entry is not None and not entry.ok:
                record.outcome, record.pruned_reason = REFUSED, entry.reason
                # measured, or inferred: then the measured candidate it dominates gives a lower bound
                source = entry if entry.measured else lmap.get(entry.inferred_from)
                record.latency_ms = source.latency_ms if source is not None else None
                record.parameters, record.macs, record.probe_seconds, record.train_seconds = \
                    entry.parameters, entry.macs, 0.0, 0.0
                record.save(trial)
                record_constraint(trial, (record.latency_ms or {}).get(cfg.statistic), cfg.latency_ms)
                raise optuna.TrialPruned(f"known over budget: {entry.reason}")

            # 2. The same full configuration was evaluated before: reuse its result, do not train again.
            earlier = _earlier_result(trial)
            if earlier is not None:
                return _reuse(trial, record, earlier, cfg)

            # 3. Probe: from the map, or build untrained, count, measure on the target (cached by architecture).
            if entry is not None:  # under budget, measured or inferred (then only the winner is measured again)
                if entry.measured:
                    record.parameters, record.macs, record.latency_ms = entry.parameters, entry.macs, entry.latency_ms
                ok, reason, probe_s = True, entry.reason, 0.0
            else:
                model = stages.build_student(spec, ctx.teacher)
                profile = stages.profile(model, spec.resolution)
                record.parameters, record.macs = int(profile.parameters), int(profile.macs)
                measure_kw = ctx.measure_options(deployment, spec)
                # the artifact of the trial's runtime/precision; cached by architecture x fingerprint (which names
                # runtime and precision)
                measurement = stages.measure(model, spec.resolution, target, ctx.cache, **measure_kw)
                for key, value in latency_attrs(measurement).items():
                    setattr(record, key, value)
                ok, reason = stages.check_budget(measurement, cfg.latency_ms, cfg.statistic, target)
                probe_s = time.perf_counter() - started
                del model
                if lmap is not None:  # others will not measure it again
                    from edgeskd.search.latency_map import MapEntry

                    new = MapEntry(record.candidate, dict(student), deploy_key, record.parameters, record.macs,
                                   record.latency_ms, bool(ok), str(reason), round(probe_s, 3))
                    store_entry(trial.study, new)
                    lmap.entries[new.key] = new
            record.probe_seconds = round(probe_s, 3)
            record_constraint(trial, (record.latency_ms or {}).get(cfg.statistic), cfg.latency_ms)
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

            # 4. Claim a training slot: with K workers, the last slots may already be taken by running trials.
            if not claim_slot(trial, cfg.trials):
                record.outcome, record.train_seconds = SURPLUS, 0.0
                record.pruned_reason = f"the {cfg.trials} training slots are taken by finished and running trials"
                record.save(trial, "outcome", "pruned_reason", "train_seconds")
                trial.study.stop()
                raise optuna.TrialPruned(record.pruned_reason)

            trial_dir = ctx.run_dir / "trials" / str(trial.number)
            config = stages.train_config(train_values)
            train_started = time.perf_counter()
            result = stages.train(spec, ctx.data, ctx.teacher, config, out_dir=trial_dir, report=report,
                                  resume=False, progress=False)
            pytorch_metric = pick_metric(dict(result.metrics), cfg.metric)
            record.train_seconds = round(time.perf_counter() - train_started, 3)
            val = dict(result.metrics).get("val") or {}
            record.val_metrics = {k: v for k, v in val.items() if isinstance(v, (int, float))}
            metric = pytorch_metric
            # 3. The trial's value: the validation split through the artifact at the trial's runtime/precision.
            if judged_on is not None and stages.evaluate_artifact is not None:
                artifact = stages.evaluate_artifact(result, ctx.data, judged_on,
                                                    ctx.calibration(judged_on, getattr(result, "preprocess", None)),
                                                    target.threads)
                metric = pick_metric(artifact, cfg.metric)
                record.deployment = {"runtime": judged_on.runtime, "precision": judged_on.precision,
                                     "label": judged_on.label, **(record.deployment or {}),
                                     "pytorch_metric": pytorch_metric, "artifact_metric": metric,
                                     "metric_drop": round(pytorch_metric - metric, 6),
                                     "top1_agreement": artifact.get("top1_agreement_vs_pytorch"),
                                     "objective": "artifact"}
                record.deployment["artifact_val"] = {k: v for k, v in artifact.items()
                                                     if isinstance(v, (int, float)) and not isinstance(v, bool)}
            record.outcome = COMPLETED
            record.save(trial, "train_seconds", "val_metrics", "outcome",
                        *(["deployment"] if record.deployment else []))
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
