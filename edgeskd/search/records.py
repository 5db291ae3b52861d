"""One search trial as a typed record, stored on the Optuna trial as user attributes (plain JSON values).

Every module that writes or reads trial data goes through `TrialRecord`: the objective fills it step by step and
saves each step (`save`), so what was known before a crash survives; the report, progress lines, winner stage and
resume logic read it back with `TrialRecord.from_trial`. The attribute names are those of earlier edgeskd versions,
so studies started before this module still read back, and optuna-dashboard shows them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# outcome of a finished trial
COMPLETED = "completed"
PRUNED_BY_METRIC = "pruned-metric"
OVER_BUDGET = "pruned-latency"       # measured during the trial, over budget, not trained
REFUSED = "refused"                  # architecture already known to be over budget: not measured, not trained
REUSED = "reused"                    # the same full configuration was evaluated before: its result is reused
FAILED = "failed"                    # a candidate this configuration cannot build or train (error of its own)
INTERRUPTED = "interrupted"          # cut off by Ctrl-C / kill; queued again on resume
SURPLUS = "surplus"                  # K workers: the last training slots were already claimed by running trials

# outcomes that spent a training run on a feasible candidate (or failed for a reason of its own): these, and only
# these, count against --trials, which is the user's budget of trainings
TRAINED = (COMPLETED, PRUNED_BY_METRIC, FAILED)
COUNTED = TRAINED
NOT_COUNTED = (OVER_BUDGET, REFUSED, REUSED, SURPLUS)

ERROR = "error"              # user attr on a trial that failed for a reason of its own (not re-queued)
RETRY_OF = "retry_of"        # user attr on a re-queued trial: the number of the interrupted trial it repeats
SLOT = "slot_claimed_at"     # user attr: when a running trial claimed one of the --trials training slots


@dataclass
class TrialRecord:
    """What edgeskd knows about one trial. Stored fields are user attributes; `number`, `state`, `values` and
    `intermediate` are read from the Optuna trial and never stored."""

    outcome: str | None = None
    student: dict[str, Any] | None = None          # StudentSpec.to_dict()
    train_config: dict[str, Any] | None = None     # TrainConfig overrides of this trial
    deployment: dict[str, Any] | None = None       # {"runtime": ..., "precision": ...} (deployment-aware search)
    candidate: str | None = None                   # latency-map key of the architecture (x deployment)
    parameters: int | None = None
    macs: int | None = None
    latency_ms: dict[str, float] | None = None     # statistics of the measurement (p50, p95, ..., n)
    fingerprint: Any = None
    latency_samples: int | None = None
    probe_seconds: float | None = None
    train_seconds: float | None = None
    seconds: float | None = None
    val_metrics: dict[str, float] | None = None
    pruned_reason: str | None = None
    error: str | None = None
    retry_of: int | None = None
    reused_from: int | None = None                 # the trial whose result a REUSED trial repeats
    # read from the Optuna trial, never stored as attributes
    number: int | None = field(default=None, metadata={"stored": False})
    state: str | None = field(default=None, metadata={"stored": False})
    values: tuple[float, ...] | None = field(default=None, metadata={"stored": False})
    intermediate: dict[int, float] = field(default_factory=dict, metadata={"stored": False})

    @classmethod
    def stored_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.metadata.get("stored", True))

    def to_attrs(self, *names: str) -> dict[str, Any]:
        """The user attributes for `names` (default: every stored field that is set)."""
        wanted = names or self.stored_names()
        unknown = set(wanted) - set(self.stored_names())
        if unknown:
            raise KeyError(f"not a stored TrialRecord field: {sorted(unknown)}")
        return {n: getattr(self, n) for n in wanted if getattr(self, n) is not None}

    def save(self, trial, *names: str) -> None:
        """Write `names` (default: every set field) onto a running Optuna trial."""
        for key, value in self.to_attrs(*names).items():
            trial.set_user_attr(key, value)

    @classmethod
    def from_trial(cls, trial) -> TrialRecord:
        attrs = trial.user_attrs
        record = cls(**{n: attrs[n] for n in cls.stored_names() if n in attrs})
        record.number = trial.number
        record.state = trial.state.name
        record.values = tuple(trial.values) if trial.values else None
        record.intermediate = dict(trial.intermediate_values)
        record.outcome = outcome_of(trial)
        return record

    @property
    def metric(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def last_metric(self) -> float | None:
        return self.intermediate[max(self.intermediate)] if self.intermediate else None

    @property
    def counted(self) -> bool:
        """Counts against --trials: a feasible candidate was trained (or failed for a reason of its own)."""
        return self.outcome in COUNTED


def outcome_of(trial) -> str:
    """The outcome of an Optuna trial, from its state and the stored outcome."""
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE:
        return REUSED if trial.user_attrs.get("outcome") == REUSED else COMPLETED
    if trial.state == TrialState.PRUNED:
        return trial.user_attrs.get("outcome", PRUNED_BY_METRIC)
    if trial.state == TrialState.FAIL:
        return FAILED if ERROR in trial.user_attrs else INTERRUPTED
    return trial.state.name.lower()


def counted(trial) -> bool:
    """Counts against --trials."""
    return outcome_of(trial) in COUNTED


def claim_slot(trial, total: int | None) -> bool:
    """Claim one of the study's `total` training slots for this running trial, right before it trains: False when
    finished counted trials plus running trials that claimed earlier already fill them (K workers would otherwise
    each start the last trial). Claims are ordered by time, then trial number; two claims made within the same
    storage round trip can still both win, so the overrun is narrowed to that window, not closed."""
    import time

    from optuna.trial import TrialState

    claimed_at = time.time()
    trial.set_user_attr(SLOT, claimed_at)
    if total is None:
        return True
    done, earlier = 0, 0
    for t in trial.study.get_trials(deepcopy=False):
        if t.number == trial.number:
            continue
        if t.state.is_finished():
            done += counted(t)
        elif t.state == TrialState.RUNNING and t.user_attrs.get(SLOT) is not None and \
                (t.user_attrs[SLOT], t.number) < (claimed_at, trial.number):
            earlier += 1
    if done + earlier < total:
        return True
    trial.set_user_attr(SLOT, None)  # withdrawn: a later claim does not wait for this trial
    return False
