"""Progress: one line per finished trial (state, latency, metric, best so far) and an overall bar.

With one worker the lines come from an Optuna callback; with several, the parent process polls the study storage,
so the lines of all workers come out of one place, in order of completion.
"""

from __future__ import annotations

import sys
from typing import Any

from edgeskd.search.records import (COMPLETED, FAILED, INTERRUPTED, OVER_BUDGET, PRUNED_BY_METRIC, TrialRecord,
                                    counted, outcome_of)

__all__ = ["Progress", "trial_line", "summary_line", "outcome_of"]


def trial_line(trial, best: float | None, metric: str, statistic: str, budget_ms: float) -> str:
    record = TrialRecord.from_trial(trial)
    outcome = record.outcome
    lat = (record.latency_ms or {}).get(statistic)
    lat_text = f"{statistic} {lat:7.2f} ms" if lat is not None else f"{statistic}    n/a   "
    if outcome == COMPLETED:
        detail = f"{metric} {record.metric:.4f}"
    elif outcome == OVER_BUDGET:
        detail = f"over the {budget_ms:g} ms budget, not trained"
    elif outcome == PRUNED_BY_METRIC:
        last = max(record.intermediate) if record.intermediate else None
        detail = f"stopped at step {last}: {metric} {record.last_metric:.4f}" if last is not None else "pruned"
    elif outcome == FAILED:
        detail = (record.error or "")[:100]
    elif outcome == INTERRUPTED:
        detail = "will be re-run"
    else:
        detail = (record.pruned_reason or "")[:100]
    student = record.student or {}
    shape = (f"d{student.get('depth', '?')} w{student.get('width', '?')} r{student.get('resolution', '?')}"
             if student else "")
    best_text = f"best {best:.4f}" if best is not None else "best -"
    deploy = (record.deployment or {}).get("label", "")
    if outcome == COMPLETED and (record.deployment or {}).get("pytorch_metric") is not None:
        detail += f" (fp32 torch {record.deployment['pytorch_metric']:.4f})"
    deploy_text = f"{deploy:14s} " if deploy else ""
    return f"trial {trial.number:3d}  {outcome:14s} {lat_text}  {shape:18s} {deploy_text}{detail:44s} {best_text}"


class Progress:
    """Prints trial lines and keeps a bar; `quiet` (for --json) sends everything to stderr as usual."""

    def __init__(self, config, total: int | None, already_done: int = 0) -> None:
        from tqdm import tqdm

        self.config = config
        self.best: float | None = None
        self.seen: set[int] = set()
        self.bar = tqdm(total=total, initial=already_done, desc="search", unit="trial", file=sys.stderr,
                        dynamic_ncols=True, leave=True)

    def seed_best(self, trials) -> None:
        """Take the best metric of trials finished before this invocation (resume) without printing them."""
        for t in trials:
            self.seen.add(t.number)
            self._update_best(t)

    def _update_best(self, trial) -> None:
        if outcome_of(trial) == COMPLETED and trial.values:
            value = trial.values[0]
            self.best = value if self.best is None else max(self.best, value)

    def on_trial(self, trial) -> None:
        if trial.number in self.seen or not trial.state.is_finished():
            return
        self.seen.add(trial.number)
        self._update_best(trial)
        self.bar.write(trial_line(trial, self.best, self.config.metric, self.config.statistic,
                                  self.config.latency_ms), file=sys.stderr)
        if counted(trial):  # the bar counts trainings, as --trials does
            self.bar.update(1)

    def __call__(self, study, trial) -> None:  # Optuna callback signature
        self.on_trial(trial)

    def poll(self, study) -> None:
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        for t in sorted(finished, key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number)):
            self.on_trial(t)

    def close(self) -> None:
        self.bar.close()


def summary_line(summary: dict[str, Any]) -> str:
    counts = summary.get("counts", {})
    return ", ".join(f"{v} {k}" for k, v in counts.items())
