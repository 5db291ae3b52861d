"""Strategy strings, registries and the index sets of the built-in strategies."""

from __future__ import annotations

import pytest
import torch

from edgeskd.errors import SelectionError
from edgeskd.selection import (SpaceInfo, Strategy, list_element_strategies, parse_strategy,
                               register_element_strategy)
from edgeskd.selection.strategies import consecutive, even, first, magnitude, random, uniform

SPACE = SpaceInfo("embed")


@pytest.mark.parametrize("text, canonical", [
    ("uniform", "uniform+first"), ("uniform+first", "uniform+first"), ("uniform:offset=1+even", "uniform:offset=1+even"),
    ("random:seed=3+even", "random:seed=3+even"), ("magnitude+first", "magnitude+first"),
    (" consecutive : offset = 2 + even ", "consecutive:offset=2+even")])
def test_parse_round_trips(text, canonical):
    parsed = parse_strategy(text)
    assert str(parsed) == canonical and parse_strategy(str(parsed)) == parsed
    assert isinstance(parsed, Strategy) and hash(parsed) == hash(parse_strategy(canonical))


def test_parse_fields():
    s = parse_strategy("uniform:offset=1+even")
    assert (s.element, s.element_kwargs, s.layer) == ("uniform", {"offset": 1}, "even")


@pytest.mark.parametrize("text, words", [("bogus+first", ["bogus", "uniform", "magnitude"]),
                                         ("uniform+sideways", ["sideways", "first", "even"]),
                                         ("uniform:stride=2", ["stride", "offset"]),
                                         ("uniform:offset", ["offset", "key=value"]),
                                         ("uniform+first+even", ["one '+'"]), ("", ["non-empty"])])
def test_bad_strategies_name_the_problem(text, words):
    with pytest.raises(SelectionError) as err:
        parse_strategy(text)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_uniform_offset_zero_is_the_reference_formula():
    assert uniform(768, 192, SPACE).tolist() == (torch.arange(192) * 4).tolist()
    assert uniform(10, 4, SPACE).tolist() == torch.linspace(0, 9, 4).round().long().tolist()  # non-divisible


def test_uniform_offsets_are_disjoint_and_in_range():
    for t, s in [(768, 192), (40, 16), (10, 4), (7, 3)]:
        a, b = set(uniform(t, s, SPACE).tolist()), set(uniform(t, s, SPACE, offset=1).tolist())
        assert len(b) == s and max(b) < t
        if t % s == 0 and t >= 2 * s:
            assert not a & b
        else:  # offset 0 follows the reference's rounded linspace; offset 1 shifts floor(i * T / S)
            assert len(a & b) < s
    assert uniform(8, 8, SPACE, offset=3).tolist() == list(range(8))


def test_consecutive_random_and_layers():
    assert consecutive(10, 4, SPACE, offset=3).tolist() == [3, 4, 5, 6]
    assert consecutive(10, 4, SPACE, offset=9).tolist() == [2, 3, 4, 5]  # wraps within the room left
    r1, r2 = random(100, 10, SPACE, seed=1), random(100, 10, SPACE, seed=1)
    assert torch.equal(r1, r2) and not torch.equal(r1, random(100, 10, SPACE, seed=2))
    assert not torch.equal(r1, random(100, 10, SpaceInfo("mlp"), seed=1))  # each space draws its own subset
    assert first(12, 4) == [0, 1, 2, 3] and even(12, 4) == [0, 4, 7, 11] and even(5, 1) == [0]


def test_magnitude_picks_the_largest():
    scores = torch.tensor([0.1, 5.0, 0.2, 3.0, 3.0, 0.0])
    info = SpaceInfo("x", lambda: scores)
    assert sorted(magnitude(6, 3, info).tolist()) == [1, 3, 4]
    assert sorted(magnitude(6, 2, info, largest=0).tolist()) == [0, 5]
    with pytest.raises(SelectionError, match="magnitudes"):
        magnitude(6, 2, SPACE)


def test_new_strategies_plug_in_by_name():
    @register_element_strategy("last-test")
    def last(teacher, student, space):
        return torch.arange(teacher - student, teacher)

    assert "last-test" in list_element_strategies()
    assert str(parse_strategy("last-test+even")) == "last-test+even"
