"""Search-space YAML: the shipped spaces load, and mistakes are reported with the file and the key."""

import optuna
import pytest

from edgeskd.errors import SearchError
from edgeskd.search.space import list_spaces, load_space, parse_space

GOOD = {
    "family": "efficientnet",
    "student": {"depth": {"choices": [0.5, 1.0]}, "width": 0.5, "resolution": {"choices": [32, 64]}},
    "strategies": [["uniform+first", "uniform:offset=1+even"], ["uniform+first", "magnitude+even"]],
    "train": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "batch_size": {"low": 8, "high": 32, "step": 8}},
    "fixed": {"method": "dual-skd"},
    "schedule": {"trial": {"epochs_skd": 1, "epochs_finetune": 1}, "final": {"epochs_skd": 3, "epochs_finetune": 1}},
}


def test_shipped_spaces_load_per_family():
    names = set(list_spaces())
    assert {"efficientnet", "vit", "convnext", "resnet", "demo"} <= names
    for name in names:
        space = load_space(name)
        assert space.family in ("efficientnet", "vit", "convnext", "resnet")
        assert space.strategies and space.schedule.final


def test_sample_stays_inside_the_space():
    space = parse_space(GOOD, "good.yaml")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        student, train = space.sample(trial)
        assert student["depth"] in (0.5, 1.0) and student["width"] == 0.5 and student["resolution"] in (32, 64)
        assert 1e-4 <= train["lr"] <= 1e-2 and train["batch_size"] in (8, 16, 24, 32)
        assert (train["strategy_a"], train["strategy_b"]) in space.strategies
        assert train["epochs_skd"] == 1 and train["method"] == "dual-skd"
        study.tell(trial, 0.0)
    assert space.smallest_student() == {"depth": 0.5, "width": 0.5, "resolution": 32}


@pytest.mark.parametrize("change, key", [
    ({"student": {"depth": {"choices": [1.5]}}}, "student.depth"),
    ({"student": {"height": 3}}, "student.height"),
    ({"student": {"resolution": {"choices": [8]}}}, "student.resolution"),
    ({"strategies": [["uniform+first"]]}, "strategies[0]"),
    ({"train": {"lr": {"low": 0, "high": 1, "log": True}}}, "train.lr"),
    ({"train": {"lr": {"low": 2, "high": 1}}}, "train.lr"),
    ({"train": {"lr": [1, 2]}}, "train.lr"),
    ({"schedule": {"trial": {"epochs_skd": 1}}}, "schedule.final"),
    ({"schedule": {"trial": {"epochs_skd": -1}, "final": {}}}, "schedule.trial.epochs_skd"),
    ({"pruner": {"type": "magic"}}, "pruner.type"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_space_names_file_and_key(change, key):
    raw = {**GOOD, **change}
    with pytest.raises(SearchError) as err:
        parse_space(raw, "/x/bad.yaml")
    assert "/x/bad.yaml" in str(err.value) and f"'{key}'" in str(err.value)


def test_missing_and_unknown_space_files(tmp_path):
    with pytest.raises(SearchError, match="nope.yaml"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(SearchError, match="unknown search space 'imaginary'"):
        load_space("imaginary")
    bad = tmp_path / "broken.yaml"
    bad.write_text("family: [unclosed\n")
    with pytest.raises(SearchError, match="broken.yaml"):
        load_space(bad)
