"""TrialRecord round-trips through Optuna user attributes; SearchConfig is frozen once resolved."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from edgeskd.search import SearchConfig
from edgeskd.search.records import (COMPLETED, COUNTED, INTERRUPTED, OVER_BUDGET, REFUSED, REUSED, TrialRecord,
                                    counted)


def test_record_round_trips_through_a_trial():
    study = optuna.create_study()
    trial = study.ask()
    record = TrialRecord(student={"depth": 0.5, "width": 1.0, "resolution": 64}, train_config={"lr": 1e-3},
                         deployment={"runtime": "ort-cpu", "precision": "fp32"}, parameters=123, macs=456,
                         latency_ms={"p95": 1.5, "n": 10.0}, probe_seconds=0.2)
    record.save(trial)
    TrialRecord(outcome=COMPLETED, train_seconds=3.0).save(trial, "outcome", "train_seconds")
    trial.report(0.4, 1)
    study.tell(trial, 0.75)
    back = TrialRecord.from_trial(study.trials[0])
    assert back.student == record.student and back.deployment == record.deployment and back.macs == 456
    assert back.outcome == COMPLETED and back.metric == 0.75 and back.last_metric == 0.4 and back.number == 0
    assert back.counted and "number" not in back.to_attrs() and back.to_attrs()["train_seconds"] == 3.0
    with pytest.raises(KeyError):
        record.to_attrs("number")


@pytest.mark.parametrize("outcome,state,is_counted", [(OVER_BUDGET, "PRUNED", False), (REFUSED, "PRUNED", False),
                                                      (REUSED, "COMPLETE", False), (None, "FAIL", False)])
def test_outcomes_and_counting(outcome, state, is_counted):
    study = optuna.create_study()
    trial = study.ask()
    if outcome:
        trial.set_user_attr("outcome", outcome)
    study.tell(trial, 0.5 if state == "COMPLETE" else None, state=optuna.trial.TrialState[state])
    t = study.trials[0]
    assert TrialRecord.from_trial(t).outcome == (outcome or INTERRUPTED)
    assert counted(t) is is_counted and (TrialRecord.from_trial(t).outcome in COUNTED) is is_counted


def test_search_config_is_frozen_and_resolved_once(tmp_path):
    space = str(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("family: efficientnet\n")
    config = SearchConfig(data="fake", space=space, run_dir=str(tmp_path / "run"), trials=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.trials = 3  # type: ignore[misc]
    resolved = config.resolve()
    assert resolved is not config and config.space_sha256 == "" and len(resolved.space_sha256) == 64
    assert resolved.study and resolved.resolve() == resolved


def test_training_slots_go_to_the_earliest_claims_and_never_past_the_trial_budget():
    from edgeskd.search.records import SLOT, SURPLUS, claim_slot

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.tell(study.ask(), 0.5)                    # one counted trial: 2 of 3 slots left
    first, second, third = study.ask(), study.ask(), study.ask()
    assert claim_slot(first, 3) and claim_slot(second, 3)
    assert not claim_slot(third, 3)                 # finished + two earlier running claims fill the budget
    assert third.study.trials[third.number].user_attrs[SLOT] is None   # withdrawn: nobody waits for it
    third.set_user_attr("outcome", SURPLUS)         # as the objective ends it: pruned, not counted
    study.tell(third, state=optuna.trial.TrialState.PRUNED)
    # the earlier claim wins, not the lower trial number: `low` claims after `high` and finds the last slot gone
    low, high = study.ask(), study.ask()
    assert claim_slot(high, 4) and not claim_slot(low, 4)
    study.tell(first, 0.1)
    study.tell(second, state=optuna.trial.TrialState.PRUNED)   # pruned by the metric: still counted
    assert not claim_slot(study.ask(), 4)           # 3 counted + `high` running
    assert claim_slot(study.ask(), None)            # no trial budget (a --timeout search): always a slot
