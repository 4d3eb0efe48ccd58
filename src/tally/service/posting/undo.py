"""A dict that can take back what changed since its last checkpoint.

The batch writer applies each submission to the batch's in-memory state and must leave that state as it
was when the submission is refused. Copying the whole state before every submission costs O(batch) per
submission; this dict remembers instead the first earlier value of each key a submission changes, so a
checkpoint is free and taking back costs what the submission touched. Values are replaced, never changed
in place (balance states, holds and cap totals are immutable values here), so the earlier value is enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_ABSENT = object()


class Revertible(dict):
    """A dict whose changes since `checkpoint()` can be taken back with `revert()`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._earlier: dict = {}  # key -> its value at the checkpoint (_ABSENT: it had none)

    def checkpoint(self) -> None:
        if self._earlier:  # one per submission and state: most find nothing to forget
            self._earlier = {}

    def revert(self) -> None:
        for key, value in self._earlier.items():
            if value is _ABSENT:
                super().pop(key, None)
            else:
                super().__setitem__(key, value)
        self._earlier = {}

    def _remember(self, key: Any) -> None:
        if key not in self._earlier:
            self._earlier[key] = self.get(key, _ABSENT)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._remember(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._remember(key)
        super().__delitem__(key)

    def update(self, other: Mapping | Iterable = (), /, **kwargs: Any) -> None:
        items = other.items() if isinstance(other, Mapping) else other
        earlier, set_item = self._earlier, super().__setitem__
        # `_remember` and `__setitem__` written out: every posted voucher updates its accounts' balances here.
        for key, value in (*items, *kwargs.items()):
            if key not in earlier:
                earlier[key] = self.get(key, _ABSENT)
            set_item(key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, *default: Any) -> Any:
        if key in self:
            self._remember(key)
        return super().pop(key, *default)

    def _untracked(self, *_args: Any) -> None:
        raise TypeError("Revertible does not track this change; use item assignment, update or pop")

    popitem = clear = __ior__ = _untracked
