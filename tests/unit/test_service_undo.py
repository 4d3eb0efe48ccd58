"""Unit tests for tally.service.posting.undo.Revertible: what changed since the checkpoint is taken back exactly."""

from __future__ import annotations

import random

import pytest

from tally.service.posting.undo import Revertible


def test_revert_restores_changed_added_and_removed_keys():
    state = Revertible({"a": 1, "b": 2, "c": 3})
    state.checkpoint()
    state["a"] = 10
    state["a"] = 11  # changed twice: the value at the checkpoint comes back, not the one in between
    state["d"] = 4
    del state["b"]
    assert state.pop("c") == 3
    state.update({"e": 5}, f=6)
    assert state.setdefault("g", 7) == 7 and state.setdefault("a", 0) == 11
    state.revert()
    assert state == {"a": 1, "b": 2, "c": 3}


def test_changes_before_the_checkpoint_stay():
    state = Revertible({"a": 1})
    state["a"] = 2
    state.checkpoint()
    state["a"] = 3
    state.revert()
    assert state == {"a": 2}


def test_a_new_checkpoint_forgets_what_the_last_one_remembered():
    state = Revertible({"a": 1})
    state.checkpoint()
    state["a"] = 2
    state.checkpoint()  # the change above is kept for good
    state["b"] = 1
    state.revert()
    assert state == {"a": 2}
    state.revert()  # nothing left to take back
    assert state == {"a": 2}


def test_pop_of_an_absent_key_with_a_default_changes_nothing():
    state = Revertible({"a": 1})
    state.checkpoint()
    assert state.pop("zz", None) is None
    with pytest.raises(KeyError):
        state.pop("zz")
    state.revert()
    assert state == {"a": 1}


@pytest.mark.parametrize("change", [lambda d: d.clear(), lambda d: d.popitem(), lambda d: d.__ior__({"x": 1})],
                         ids=["clear", "popitem", "ior"])
def test_changes_it_cannot_take_back_are_refused(change):
    state = Revertible({"a": 1})
    with pytest.raises(TypeError):
        change(state)
    assert state == {"a": 1}


def test_revert_equals_a_copy_taken_at_the_checkpoint():
    """Random changes: reverting gives what a full copy at the checkpoint (the old way) would give."""
    rng = random.Random(5)
    state = Revertible({k: rng.randrange(100) for k in range(20)})
    for _ in range(200):
        copy = dict(state)
        state.checkpoint()
        for _ in range(rng.randrange(6)):
            key = rng.randrange(30)
            action = rng.randrange(3)
            if action == 0:
                state[key] = rng.randrange(100)
            elif action == 1:
                state.pop(key, None)
            else:
                state.update({key: rng.randrange(100), key + 1: rng.randrange(100)})
        if rng.random() < 0.5:
            state.revert()
            assert state == copy
