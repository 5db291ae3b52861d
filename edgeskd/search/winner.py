"""After the trials: choose the winner, train it with the full schedule, re-measure it on the target (it must meet
the budget again), export it as a bundle, and write the report and summary.json.

An impossible budget (no candidate fits) ends here with a SearchError naming the fastest candidate seen; nothing has
been trained in that case, because over-budget candidates are pruned before training.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edgeskd._io import atomic_write_json
from edgeskd.errors import SearchError
from edgeskd.search.objective import SearchContext, latency_attrs, pick_metric
from edgeskd.search.records import COMPLETED, NOT_COUNTED, OVER_BUDGET, REFUSED, REUSED, TRAINED, TrialRecord

SUMMARY_NAME = "summary.json"
DEMO_NOTE = ("demo data: the 16 real paediatric chest X-rays shipped by pneumonia-model-package (8 normal, 8 "
             "pneumonia); far too few to judge accuracy, it shows the pipeline end to end")


def _latency_of(trial, statistic: str) -> float:
    value = (trial.user_attrs.get("latency_ms") or {}).get(statistic)
    return float(value) if isinstance(value, (int, float)) else float("inf")


def rank_candidates(study, pareto: bool, statistic: str = "p95") -> list:
    """Completed trials, best first. Single objective: by validation metric, ties (a tiny validation split) to the
    faster candidate. Pareto: the front first (best metric, ties to lower latency), then the others by metric."""
    from optuna.trial import TrialState

    # reused duplicates repeat a completed trial's value: rank the original only
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE
            and t.user_attrs.get("outcome") != REUSED]
    by_metric = sorted(done, key=lambda t: (-t.values[0], _latency_of(t, statistic), t.number))
    if not pareto or not done:
        return by_metric
    front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1], t.number))
    numbers = {t.number for t in front}
    return front + [t for t in by_metric if t.number not in numbers]


def choose_winner(study, pareto: bool, statistic: str = "p95"):
    """The best completed trial (see rank_candidates), or None."""
    ranked = rank_candidates(study, pareto, statistic)
    return ranked[0] if ranked else None


def trial_rows(study, statistic: str, latency_map=None) -> list[dict[str, Any]]:
    """One row per finished trial. A trial trained on a candidate the map inferred under budget (never measured)
    shows the latency of the measured candidate it is at most as large as: an upper bound (`latency_bound`)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        r = TrialRecord.from_trial(t)
        student, cfg = r.student or {}, r.train_config or {}
        latency, bound = (r.latency_ms or {}).get(statistic), False
        entry = latency_map.get(r.candidate) if latency is None and latency_map is not None and r.candidate else None
        if entry is not None and entry.inferred_from and latency_map.get(entry.inferred_from) is not None:
            latency, bound = latency_map.get(entry.inferred_from).latency_ms.get(statistic), True
        rows.append({
            "number": r.number, "outcome": r.outcome, "metric": r.metric,
            "latency_ms": latency, "latency_bound": bound,
            "depth": student.get("depth"), "width": student.get("width"), "resolution": student.get("resolution"),
            "deployment": r.deployment,
            "strategies": f"{cfg.get('strategy_a', '')} / {cfg.get('strategy_b', '')}" if cfg else "",
            "parameters": r.parameters, "macs": r.macs, "probe_seconds": r.probe_seconds,
            "train_seconds": r.train_seconds, "seconds": r.seconds,
            "reason": r.pruned_reason or r.error or "", "retry_of": r.retry_of, "reused_from": r.reused_from,
            "last_metric": r.last_metric,
        })
    return rows


def time_shares(rows: list[dict[str, Any]], map_seconds: float = 0.0) -> dict[str, float]:
    """Where trial time went: the latency map and probing (build+measure) vs training, and on infeasible
    candidates. probe_seconds includes the map built by this invocation."""
    probe = sum(r["probe_seconds"] or 0 for r in rows) + map_seconds
    train = sum(r["train_seconds"] or 0 for r in rows)
    infeasible = [r for r in rows if r["outcome"] in (OVER_BUDGET, REFUSED)]
    return {"probe_seconds": round(probe, 3), "map_seconds": round(map_seconds, 3), "train_seconds": round(train, 3),
            "infeasible_seconds": round(sum(r["seconds"] or 0 for r in infeasible), 3),
            "infeasible_train_seconds": round(sum(r["train_seconds"] or 0 for r in infeasible), 3)}


def finish(ctx: SearchContext, study, *, search_seconds: float, show_progress: bool) -> dict[str, Any]:
    from edgeskd.search.report import write_report

    cfg, run_dir = ctx.config, ctx.run_dir
    if ctx.latency_map is not None:  # entries the trials added (continuous spaces) go into the saved copy too
        from edgeskd.search.latency_map import refresh, save_map

        refresh(ctx.latency_map, study)
        save_map(ctx.latency_map, run_dir)
    rows = trial_rows(study, cfg.statistic, ctx.latency_map)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    summary: dict[str, Any] = {
        "study": cfg.study, "run_dir": str(run_dir), "storage": cfg.storage_display, "teacher": cfg.teacher,
        "data": cfg.data, "target": cfg.target, "budget_ms": cfg.latency_ms, "statistic": cfg.statistic,
        "metric": cfg.metric, "pareto": cfg.pareto, "counts": counts, "trials": len(rows),
        "search_seconds": round(search_seconds, 2), "winner": None, "ok": False,
        "time": time_shares(rows, ctx.latency_map.seconds if ctx.latency_map is not None else 0.0),
        # --trials counts trainings; the others cost no training (see edgeskd.search.records)
        "trained": sum(r["outcome"] in TRAINED for r in rows), "reused": counts.get(REUSED, 0),
        "refused": counts.get(REFUSED, 0) + counts.get(OVER_BUDGET, 0),
        "latency_map": _map_summary(ctx.latency_map),
    }
    if cfg.demo:
        summary["note"] = DEMO_NOTE
    ranked = rank_candidates(study, cfg.pareto, cfg.statistic)
    summary["validation"] = validation_note(ctx, ranked)
    summary["deployments"] = ctx.deploy_lines
    winner, rejected = _confirm_latency(ctx, ranked)
    summary["rejected_on_remeasure"] = rejected
    if winner is None and rejected:
        message = (f"every completed candidate missed the {cfg.statistic} budget of {cfg.latency_ms:g} ms on "
                   f"{cfg.target} when re-measured before final training (" +
                   "; ".join(f"trial {r['trial']}: {r['reason']}" for r in rejected[:3]) +
                   "); nothing was trained for the final model. Latency on this target is noisy near the budget: "
                   "leave more margin or gate on a quieter device")
        summary["error"] = message
        write_report(run_dir, summary, rows, None)
        atomic_write_json(run_dir / SUMMARY_NAME, summary)
        raise SearchError(message)
    if winner is None:
        measured = [r for r in rows if r["latency_ms"] is not None] + _map_rows(ctx.latency_map)
        if measured and sum(counts.get(k, 0) for k in NOT_COUNTED) == len(rows) and \
                not any(r.get("ok") for r in measured):
            fastest = min(measured, key=lambda r: r["latency_ms"])
            message = (f"no candidate meets the {cfg.statistic} budget of {cfg.latency_ms:g} ms on {cfg.target}: "
                       f"the fastest of {len(measured)} measured was "
                       f"{'trial ' if isinstance(fastest['number'], int) else ''}{fastest['number']} (depth "
                       f"{fastest['depth']}, width {fastest['width']}, resolution {fastest['resolution']}) at "
                       f"{fastest['latency_ms']:.2f} ms; nothing was trained. Raise --latency-ms or use a space with "
                       f"smaller students (--space)")
            summary["fastest"] = fastest
        else:
            message = f"no trial completed ({', '.join(f'{v} {k}' for k, v in counts.items()) or 'no trials ran'})"
        summary["error"] = message
        write_report(run_dir, summary, rows, None)
        atomic_write_json(run_dir / SUMMARY_NAME, summary)
        raise SearchError(message)

    summary["winner"] = _final(ctx, winner, show_progress)
    summary["ok"] = summary["winner"]["budget_ok"]
    write_report(run_dir, summary, rows, summary["winner"])
    atomic_write_json(run_dir / SUMMARY_NAME, summary)
    if not summary["ok"]:
        raise SearchError(f"the winner (trial {winner.number}) missed the budget when re-measured after full "
                          f"training: {summary['winner']['budget_reason']}; no bundle was written. Latency on this "
                          f"target may be noisy: rerun the same command (it resumes) or leave more margin")
    return summary


MIN_VAL_PER_CLASS = 30


def validation_note(ctx: SearchContext, ranked: list) -> dict[str, Any]:
    """Whether the validation split can separate candidates: fewer than MIN_VAL_PER_CLASS images in some class, or
    a tie on the metric at the top (then the faster candidate won), is said in the summary and the report."""
    val = ctx.data.val
    counts: dict[str, int] = {}
    labels = getattr(val, "labels", [])
    classes = list(getattr(val, "classes", []) or [])
    for label in labels:
        key = classes[int(label)] if classes and not hasattr(label, "__len__") else str(label)
        counts[key] = counts.get(key, 0) + 1
    smallest = min(counts.values()) if counts else 0
    tied = [t.number for t in ranked if ranked and t.values[0] == ranked[0].values[0]]
    note = {"images": int(len(labels)), "smallest_class": smallest, "min_per_class": MIN_VAL_PER_CLASS,
            "too_small": smallest < MIN_VAL_PER_CLASS, "tied_at_top": tied if len(tied) > 1 else []}
    parts = []
    if note["too_small"]:
        parts.append(f"the validation split is too small to separate candidates reliably (smallest class has "
                     f"{smallest} image{'' if smallest == 1 else 's'}; {MIN_VAL_PER_CLASS}+ per class recommended)")
    if note["tied_at_top"]:
        parts.append(f"trials {tied} tie on the metric; the faster one won")
    note["text"] = "; ".join(parts)
    return note


def _deployment_of(ctx: SearchContext, trial) -> Any:
    from edgeskd.search.deployment import Deployment

    d = TrialRecord.from_trial(trial).deployment
    return Deployment(d["runtime"], d["precision"]) if d and ctx.deployments else None


def _measure_deployed(ctx: SearchContext, model, spec, deployment, preprocess=None):
    """Uncached measurement of `model` at the deployment's runtime/precision (the configured target without one)."""
    target = ctx.target_of(deployment)
    kw = {}
    if deployment is not None and deployment.precision == "int8":
        from edgeskd.data.preprocess import PreprocessSpec

        pre = preprocess or PreprocessSpec.for_model(ctx.teacher, size=spec.resolution, channels=spec.in_chans)
        kw["calibration"] = ctx.calibration(deployment, pre)
    return ctx.stages.measure(model, spec.resolution, target, None, **kw), target


def _map_summary(latency_map) -> dict[str, Any] | None:
    if latency_map is None:
        return None
    info = latency_map.to_dict()
    return {k: v for k, v in info.items() if k != "entries"}


def _map_rows(latency_map) -> list[dict[str, Any]]:
    """Latency-map entries shaped like trial rows (for the 'no candidate fits' message)."""
    if latency_map is None:
        return []
    return [{"number": f"latency-map candidate {e.key!r}", "latency_ms": e.latency_ms.get(latency_map.statistic),
             "ok": e.ok, **{k: e.student.get(k) for k in ("depth", "width", "resolution")}}
            for e in latency_map.entries.values() if e.latency_ms.get(latency_map.statistic) is not None]


def _confirm_latency(ctx: SearchContext, ranked: list) -> tuple[Any, list[dict[str, Any]]]:
    """Walk the ranked candidates and return the first whose fresh (uncached) measurement still meets the budget,
    before any final training is spent on it; a candidate that passed its trial gate only by noise is skipped."""
    from edgeskd.models import StudentSpec

    cfg, stages = ctx.config, ctx.stages
    rejected: list[dict[str, Any]] = []
    for trial in ranked:
        spec = StudentSpec.from_dict(TrialRecord.from_trial(trial).student)
        model = stages.build_student(spec, ctx.teacher)
        measurement, target = _measure_deployed(ctx, model, spec, _deployment_of(ctx, trial))
        ok, reason = stages.check_budget(measurement, cfg.latency_ms, cfg.statistic, target)
        if ok:
            return trial, rejected
        rejected.append({"trial": trial.number, "reason": str(reason)})
    return None, rejected


def _final(ctx: SearchContext, trial, show_progress: bool) -> dict[str, Any]:
    """Full-schedule training, re-measurement and export of the winning trial's candidate."""
    from edgeskd.models import StudentSpec

    cfg, stages = ctx.config, ctx.stages
    record = TrialRecord.from_trial(trial)
    spec = StudentSpec.from_dict(record.student)
    values = {**record.train_config, **ctx.space.schedule.final}
    out = ctx.run_dir / "winner"
    started = time.perf_counter()
    resume = (out / "state.safetensors").is_file()  # a final training cut off earlier continues where it stopped
    result = stages.train(spec, ctx.data, ctx.teacher, stages.train_config(values), out_dir=out, report=None,
                          resume=resume, progress=show_progress)
    train_seconds = time.perf_counter() - started
    metrics = dict(result.metrics)
    # Fresh measurement (no cache) of the trained model at its runtime/precision: the number the manifest carries.
    deployment = _deployment_of(ctx, trial)
    measurement, target = _measure_deployed(ctx, result.model, spec, deployment, getattr(result, "preprocess", None))
    ok, reason = stages.check_budget(measurement, cfg.latency_ms, cfg.statistic, target)
    judged_on = deployment or ctx.target_deployment()
    artifact: dict[str, Any] | None = None
    if judged_on is not None and stages.evaluate_artifact is not None:
        # The artifact's test metric (the deployed model's), beside the PyTorch one.
        calibration = ctx.calibration(judged_on, getattr(result, "preprocess", None))
        test_set = ctx.data.test if len(ctx.data.test) else ctx.data.val
        scored = stages.evaluate_artifact(result, SimpleNamespace(val=test_set), judged_on, calibration,
                                          target.threads)
        artifact = {"runtime": judged_on.runtime, "precision": judged_on.precision, "label": judged_on.label,
                    "split": "test" if len(ctx.data.test) else "val",
                    "metric": pick_metric(scored, cfg.metric),
                    "pytorch_metric": pick_metric(metrics.get("test") or metrics.get("val") or {}, cfg.metric),
                    "top1_agreement": scored.get("top1_agreement_vs_pytorch"),
                    "calibration": _calibration_record(calibration)}
        artifact["metric_drop"] = round(artifact["pytorch_metric"] - artifact["metric"], 6)
    record: dict[str, Any] = {
        "trial": trial.number, "student": spec.to_dict(), "train_config": values,
        "search_metric": trial.values[0], "val_metric": pick_metric(metrics, cfg.metric),
        "val": _scalars(metrics.get("val")), "test": _scalars(metrics.get("test")),
        "confusion_matrix": (metrics.get("test") or metrics.get("val") or {}).get("confusion_matrix"),
        "classes": list(ctx.data.train.classes),
        "search_latency_ms": record.latency_ms, **latency_attrs(measurement),
        "parameters": record.parameters, "macs": record.macs, "deployment": record.deployment,
        "artifact": artifact, "target": target.name if hasattr(target, "name") else str(target),
        "train_seconds": round(train_seconds, 2), "checkpoint": str(result.checkpoint),
        "budget_ok": bool(ok), "budget_reason": str(reason), "bundle": None,
    }
    if ok:
        images, labels = _parity_images(ctx)
        # The bundle's primary model is the winner's deployment (runtime, precision, its calibration set).
        deploy_kw = {}
        if artifact is not None:
            calibration = ctx.calibration(judged_on, getattr(result, "preprocess", None))
            deploy_kw = {"primary": artifact["label"], "calibration": calibration,
                         "primary_accuracy": {k: artifact[k] for k in ("split", "metric", "pytorch_metric",
                                                                       "metric_drop", "top1_agreement")}
                         | {"metric_name": cfg.metric}}
        bundle = stages.export_bundle(result.checkpoint, ctx.run_dir / "bundle", parity_images=images,
                                      parity_labels=labels, latency=measurement, **deploy_kw)
        record["bundle"] = str(ctx.run_dir / "bundle")
        record["bundle_report"] = _jsonable(bundle)
    return record


def _calibration_record(calibration) -> dict[str, Any] | None:
    if calibration is None:
        return None
    from edgeskd.search.deployment import calibration_hash

    return {"images": int(len(calibration)), "sha256": calibration_hash(calibration), "source": "training split"}


def _parity_images(ctx: SearchContext):
    """A few real test images (raw pixels) for the export's parity gate."""
    test = ctx.data.test if len(ctx.data.test) else ctx.data.val
    n = min(8, len(test))
    return [test.images[i] for i in range(n)], [int(test.labels[i]) for i in range(n)]


def _scalars(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None}


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (dict, list, str, int, float)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
