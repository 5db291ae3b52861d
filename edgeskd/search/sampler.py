"""The Optuna sampler a search uses, chosen by the space YAML (`sampler: tpe | random | gp | cmaes`, TPE default).

Samplers that support constrained optimisation (TPE, GP) learn a constraint from each trial's measured (or mapped)
latency: `latency - budget` (<= 0 is feasible), so the sampler learns where the infeasible region is even for
candidates the latency map did not cover. Optuna >= 5 takes it per trial (`Trial.set_constraint`, see
`record_constraint`); older versions through the samplers' `constraints_func`. Random needs no model; CMA-ES has no constraint support in Optuna and
only drives numeric ranges (categorical choices fall back to random sampling), so it is refused for a space without
a numeric range and for Pareto (multi-objective) searches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edgeskd.errors import SearchError

SAMPLERS = ("tpe", "random", "gp", "cmaes")
DEFAULT_SAMPLER = "tpe"
STARTUP_TRIALS = 5  # random trials before a model-based sampler takes over (12-trial searches need it small)


def trial_constraints() -> bool:
    """Optuna >= 5: constraints are set on the trial; before, samplers take a constraints_func."""
    from optuna.trial import Trial

    return hasattr(Trial, "set_constraint")


def record_constraint(trial, latency_ms: float | None, budget_ms: float) -> None:
    """Tell the sampler whether this trial's candidate is feasible (no-op on Optuna < 5: constraints_func does it)."""
    if latency_ms is not None and trial_constraints():
        trial.set_constraint("latency", float(latency_ms) - budget_ms)


def latency_constraint(statistic: str, budget_ms: float) -> Callable[[Any], Sequence[float]]:
    """Optuna constraints_func: one value, the trial's latency minus the budget (<= 0 feasible; 0 when unknown)."""

    def constraints(trial) -> Sequence[float]:
        latency = (trial.user_attrs.get("latency_ms") or {}).get(statistic)
        return (float(latency) - budget_ms,) if isinstance(latency, (int, float)) else (0.0,)

    return constraints


def check_sampler(kind: str, *, has_numeric_range: bool, pareto: bool, source: str = "") -> None:
    """Refuse a sampler that does not exist here or does not fit the search (one line naming the choice)."""
    where = f"search space {source}: key 'sampler': " if source else "sampler: "
    if kind not in SAMPLERS:
        raise SearchError(f"{where}expected one of {', '.join(SAMPLERS)}; got {kind!r}")
    if kind == "cmaes":
        import importlib.util

        if pareto:
            raise SearchError(f"{where}cmaes cannot optimise two objectives (--pareto); use tpe, gp or random")
        if not has_numeric_range:
            raise SearchError(f"{where}cmaes needs at least one numeric range (low/high) in the space; this space "
                              f"has only choices, use tpe, gp or random")
        if importlib.util.find_spec("cmaes") is None:
            raise SearchError(f"{where}cmaes needs the 'cmaes' package: pip install cmaes")


def make_sampler(kind: str, *, seed: int, statistic: str, budget_ms: float, pareto: bool = False):
    import warnings

    import optuna

    check_sampler(kind, has_numeric_range=True, pareto=pareto)
    constraints = None if trial_constraints() else latency_constraint(statistic, budget_ms)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # constraints_func, GPSampler
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP_TRIALS, constraints_func=constraints)
    if kind == "cmaes":  # it ignores constraints (documented above); say so once in the docs, not per trial
        warnings.filterwarnings("ignore", message="Constraints have been set, but CmaEsSampler")
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS, constraints_func=constraints)
