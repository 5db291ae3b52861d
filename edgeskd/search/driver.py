"""The search loop: open (or resume) the study, run trials in one or K local worker processes, then hand the study
to the winner stage (edgeskd.search.winner).

Before the first trial the latency map is built (edgeskd.search.latency_map) and stored in the study, so every
worker reads it. Trials count against `--trials` across all workers and all resumed runs when they trained a
feasible candidate: completed, pruned by metric and failed-for-their-own-reason trials count; trials refused as
known over budget, reused duplicates and candidates found over budget by their own probe do not (a search cannot
spin forever on them: it stops after MAX_UNCOUNTED_PER_TRIAL of them per wanted trial); interrupted ones are
re-queued and do not count either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from edgeskd.errors import EdgeskdError, SearchError
from edgeskd.search.config import SearchConfig, save_or_check
from edgeskd.search.objective import SearchContext, make_objective
from edgeskd.search.stages import Stages
from edgeskd.search.latency_map import build_map
from edgeskd.search.records import counted
from edgeskd.search.sampler import make_sampler
from edgeskd.search.storage import StorageInfo, open_storage, recover_interrupted, resolve_storage, run_lock

STORAGE_ENV = "EDGESKD_SEARCH_STORAGE"   # the real storage URL reaches workers here, never through files
DEADLINE_ENV = "EDGESKD_SEARCH_DEADLINE"
WORKER_ENV = "EDGESKD_SEARCH_WORKER"
MAX_UNCOUNTED_PER_TRIAL = 10


def finished_count(study) -> int:
    return sum(counted(t) for t in study.get_trials(deepcopy=False))


class StopAfter:
    """Optuna callback: stop this worker once the whole study has `total` counted trials, or when it keeps drawing
    uncounted ones (refused, reused, over budget) far beyond what the trial budget explains."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.uncounted_limit = MAX_UNCOUNTED_PER_TRIAL * max(total or 0, 10)

    def __call__(self, study, trial) -> None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        done = sum(counted(t) for t in trials)
        if (self.total is not None and done >= self.total) or \
                sum(not counted(t) and t.state.name != "FAIL" for t in trials) >= self.uncounted_limit:
            study.stop()


def make_pruner(space_pruner: dict[str, Any], pareto: bool):
    import optuna

    kind = space_pruner.get("type", "median")
    options = {k: v for k, v in space_pruner.items() if k != "type"}
    if pareto or kind == "none":
        return optuna.pruners.NopPruner()
    try:
        if kind == "median":
            return optuna.pruners.MedianPruner(**options)
        if kind == "percentile":
            return optuna.pruners.PercentilePruner(**options)
        return optuna.pruners.HyperbandPruner(**options)
    except TypeError as exc:
        raise SearchError(f"bad pruner options {options} for {kind}: {exc}") from exc


def open_study(config: SearchConfig, storage, space_pruner: dict[str, Any], worker: int = 0, sampler: str = "tpe"):
    """Create the study or join the existing one of the same name (same search identity required)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize", "minimize"] if config.pareto else ["maximize"]
    try:
        existing = len(storage.get_all_trials(storage.get_study_id_from_name(config.study), deepcopy=False))
    except KeyError:
        existing = 0
    # A different seed per resume and per worker: the same seed would draw the same first candidates again.
    sampler = make_sampler(sampler, seed=config.seed + existing + 7919 * worker, statistic=config.statistic,
                           budget_ms=config.latency_ms, pareto=config.pareto)
    try:
        study = optuna.create_study(storage=storage, study_name=config.study, directions=directions, sampler=sampler,
                                    pruner=make_pruner(space_pruner, config.pareto), load_if_exists=True)
    except ValueError as exc:  # e.g. an existing study with other directions
        raise SearchError(f"cannot join study {config.study!r}: {exc}") from exc
    identity = {k: v for k, v in config.identity().items()}
    saved = study.user_attrs.get("edgeskd")
    if saved is None:
        study.set_user_attr("edgeskd", identity)
        with warnings.catch_warnings():  # set_metric_names is marked experimental; the dashboard shows the names
            warnings.simplefilter("ignore")
            study.set_metric_names([config.metric, f"{config.statistic}_ms"] if config.pareto else [config.metric])
    elif saved != identity:
        differ = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
        raise SearchError(f"study {config.study!r} in {config.storage_display} was started with other settings "
                          f"({', '.join(f'{k}: {saved.get(k)!r} vs {identity.get(k)!r}' for k in differ)}); "
                          f"give this search its own --study name")
    return study


def run_search(config: SearchConfig, *, storage_url: str | None = None, stages: Stages | None = None,
               show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the search described by `config`; returns the summary (also written as summary.json)."""
    from edgeskd.search.progress import Progress
    from edgeskd.search.winner import finish

    if config.trials is None and config.timeout is None:
        raise SearchError("give the search a budget: --trials N and/or --timeout SECONDS")
    config = config.resolve()
    run_dir = Path(config.run_dir)
    info = resolve_storage(storage_url, run_dir, config.workers)
    config = config.with_storage(info.display)
    started = time.perf_counter()
    with run_lock(run_dir):
        save_or_check(config, run_dir)
        ctx = SearchContext.load(config, _on_device(config, stages))
        _check_space_against_training(ctx)
        if show_progress:
            for line in ctx.deploy_lines:  # which runtime/precision combinations this device keeps, and why not
                print(line, file=sys.stderr)
        storage = open_storage(info)
        study = open_study(config, storage, ctx.space.pruner, sampler=ctx.space.sampler)
        requeued = recover_interrupted(study, local=info.local)
        # Every architecture x deployment choice, each on its own deployment's artifact (an fp32-only map would
        # drop what int8 brings under budget).
        ctx.latency_map = build_map(ctx, study, log=(lambda m: print(m, file=sys.stderr)) if show_progress else None)
        nothing_fits = ctx.latency_map is not None and ctx.latency_map.complete and not ctx.latency_map.feasible()
        done_before = finished_count(study)
        progress = Progress(config, config.trials, done_before) if show_progress else None
        if progress:
            progress.seed_best([t for t in study.get_trials(deepcopy=False) if counted(t)])
            if done_before or requeued:
                progress.bar.write(f"resuming study {config.study!r}: {done_before} trials finished before"
                                   + (f", re-running interrupted trial(s) {requeued}" if requeued else ""),
                                   file=sys.stderr)
        remaining = None if config.trials is None else config.trials - done_before
        try:
            if (remaining is None or remaining > 0) and not nothing_fits:
                if config.workers == 1:
                    _optimize_here(ctx, study, progress)
                else:
                    _optimize_in_workers(config, info, study, progress)
        finally:
            if progress:
                progress.close()
        search_seconds = time.perf_counter() - started
        return finish(ctx, study, search_seconds=search_seconds, show_progress=show_progress)


def _on_device(config: SearchConfig, stages: Stages | None) -> Stages:
    """Trials here train on config.device under its device lock; measurements lock the device they run on."""
    from edgeskd.search.devices import on_device
    from edgeskd.search.stages import load_stages

    return on_device(stages or load_stages(config.stages), config.device)


def _check_space_against_training(ctx: SearchContext) -> None:
    """Fail before any trial if the space names a training field or value TrainConfig does not accept."""
    space = ctx.space
    values = dict(space.fixed)
    values.update({name: p.values()[0] for name, p in space.train.items()})
    values.update(space.schedule.trial)
    from edgeskd.selection import parse_strategy

    for i, (a, b) in enumerate(space.strategies):
        try:
            parse_strategy(a)
            parse_strategy(b)
            ctx.stages.train_config({**values, "strategy_a": a, "strategy_b": b})
        except EdgeskdError as exc:
            raise SearchError(f"search space {space.source}: key 'strategies[{i}]': {exc}") from exc


def _optimize_here(ctx: SearchContext, study, progress) -> None:
    callbacks = [StopAfter(ctx.config.trials)] + ([progress] if progress else [])
    study.optimize(make_objective(ctx), timeout=ctx.config.timeout, callbacks=callbacks, catch=(EdgeskdError,),
                   gc_after_trial=False)


def _set_parent_death_signal() -> None:
    """Linux: a worker dies with the search that started it (kill -9 of the parent leaves no orphans)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _optimize_in_workers(config: SearchConfig, info: StorageInfo, study, progress) -> None:
    log_dir = Path(config.run_dir) / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    env = {**os.environ, STORAGE_ENV: info.url, "OMP_NUM_THREADS": str(threads)}
    if config.timeout is not None:
        env[DEADLINE_ENV] = str(time.time() + config.timeout)
    from edgeskd.search.devices import worker_assignments

    # one GPU per worker (round robin over the GPUs torch sees) through CUDA_VISIBLE_DEVICES, or all on the CPU
    places = worker_assignments(config.device, config.workers)
    procs = []
    for i in range(config.workers):
        log = open(log_dir / f"worker-{i}.log", "ab")
        procs.append((subprocess.Popen([sys.executable, "-m", "edgeskd.search.worker", config.run_dir],
                                       env={**env, **places[i], WORKER_ENV: str(i + 1)}, stdout=log,
                                       stderr=subprocess.STDOUT,
                                       preexec_fn=_set_parent_death_signal), log, i))
    try:
        while any(p.poll() is None for p, _, _ in procs):
            if progress:
                progress.poll(study)
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p, _, _ in procs:  # they got the same SIGINT; give them a moment to mark their trials
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    finally:
        for _, log, _ in procs:
            log.close()
    if progress:
        progress.poll(study)
    failed = [(i, p.returncode) for p, _, i in procs if p.returncode != 0]
    if failed:
        detail = ", ".join(f"worker {i} exited {rc} (see {log_dir / f'worker-{i}.log'})" for i, rc in failed)
        raise SearchError(f"search workers failed: {detail}")
