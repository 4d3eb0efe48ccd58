"""Patterns: literal text with `{name}` placeholders, used for account codes and memos.

An account pattern such as `channel_clearing:{channel}:{currency}` is filled from a flow's parties and
tags to give an account code, and matched against a concrete code to find the template an account is
opened from. A placeholder value is `[A-Za-z0-9_.@/-]+`: no colon, so a party cannot smuggle extra
segments into a code and reach another template's accounts. `{currency}` is always the flow's currency, three
capital letters, so a main account's pattern (`merchant:{merchant}:{currency}`) never matches the codes of
its sub-accounts (`merchant:{merchant}:{currency}/pending`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from tally.domain.errors import LedgerError, invalid
from tally.domain.fields import check_code

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
PLACEHOLDER_VALUE = re.compile(r"[A-Za-z0-9_.@/-]+")
CURRENCY = "currency"  # the placeholder of the flow's currency code
CURRENCY_VALUE = re.compile(r"[A-Z]{3}")  # as domain.money checks a currency code
_VALUE_CHARS = frozenset(string.ascii_letters + string.digits + "_.@/-")
_CURRENCY_CHARS = frozenset(string.ascii_uppercase)
_CODE_CHARS = _VALUE_CHARS | {":"}


class PatternError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset  # 0-based index into the pattern text


@dataclass(frozen=True)
class Slot:
    name: str


@dataclass(frozen=True)
class Pattern:
    text: str
    parts: tuple[str | Slot, ...]
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(part.name for part in self.parts if isinstance(part, Slot))

    @property
    def shape(self) -> tuple[str | None, ...]:
        """The pattern with its placeholder names erased: `merchant:{party}:{currency}/settled` and
        `merchant:{merchant}:{currency}/settled` name the same accounts."""
        return tuple(None if isinstance(part, Slot) else part for part in self.parts)

    def match(self, code: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(code)
        return None if found is None else dict(zip(self.names, found.groups(), strict=True))

    def fill(self, fields: Mapping[str, str]) -> str:
        """The account code for these parties and tags; a missing or malformed one is the caller's error."""
        out = []
        for part in self.parts:
            out.append(_field(part.name, fields, self.text) if isinstance(part, Slot) else part)
        return check_code("".join(out), "account")

    def render(self, fields: Mapping[str, str]) -> str:
        """Memo text: an absent field renders empty, since a memo only describes the voucher."""
        return "".join(fields.get(part.name, "") if isinstance(part, Slot) else part for part in self.parts)


def _field(name: str, fields: Mapping[str, str], pattern: str) -> str:
    value = fields.get(name, "")
    if not value:
        raise invalid("FLOW_FIELD_MISSING", f"flow field {name!r} is needed for account {pattern!r}", field=name)
    if not _value_regex(name).fullmatch(value):
        raise invalid("FLOW_FIELD_INVALID", f"flow field {name!r} must be letters, digits and _.@/- only",
                      field=name)
    return value


def parse_pattern(text: str, *, code: bool) -> Pattern:
    """Parses an account pattern (`code=True`: code characters only, placeholders separated by literal
    text so matching is unambiguous) or a memo pattern (any text but braces)."""
    parts: list[str | Slot] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "{":
            if literal:
                parts.append("".join(literal))
                literal = []
            slot, i = _placeholder(text, i)
            if code and parts and isinstance(parts[-1], Slot):
                raise PatternError("two placeholders must be separated by literal text", i - len(slot.name) - 2)
            parts.append(slot)
            continue
        if ch == "}":
            raise PatternError("'}' without '{'", i)
        if code and ch not in _CODE_CHARS:
            raise PatternError(f"character {ch!r} cannot be part of an account code", i)
        literal.append(ch)
        i += 1
    if literal:
        parts.append("".join(literal))
    pattern = Pattern(text, tuple(parts), _regex(parts))
    if code:
        _check_code_shape(pattern)
    return pattern


def _placeholder(text: str, start: int) -> tuple[Slot, int]:
    """The placeholder opening at `start` and the index just past its closing brace."""
    end = text.find("}", start)
    if end < 0:
        raise PatternError("'{' is never closed", start)
    name = text[start + 1:end]
    if not NAME.fullmatch(name):
        raise PatternError(f"placeholder {{{name}}} must be a name (a letter, then letters, digits or _)", start)
    return Slot(name), end + 1


def _check_code_shape(pattern: Pattern) -> None:
    if not pattern.parts:
        raise PatternError("an account pattern cannot be empty", 0)
    sample = "".join("x" if isinstance(part, Slot) else part for part in pattern.parts)
    try:
        check_code(sample)
    except LedgerError:
        raise PatternError("does not make a valid account code (start with a letter or digit, at most 128 "
                           "characters of letters, digits and _.:/@-)", 0) from None


def _regex(parts: list[str | Slot]) -> re.Pattern[str]:
    return re.compile("".join(f"({_value_regex(part.name).pattern})" if isinstance(part, Slot) else re.escape(part)
                              for part in parts))


def _value_regex(name: str) -> re.Pattern[str]:
    return CURRENCY_VALUE if name == CURRENCY else PLACEHOLDER_VALUE


# Overlap: can two account patterns match the same code? Each pattern is a sequence of items, each one
# character of a set (a literal character, or a value character), the items of a placeholder being "one
# value character" then "any number more" (`{currency}`: three capital letters). Walking both sequences
# together over every pair of positions decides it exactly.
Item = tuple[str | frozenset[str], bool]  # (the character or the characters it may be, repeats any number of times)


def overlaps(a: Pattern, b: Pattern) -> bool:
    x, y = _items(a), _items(b)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(x) and j == len(y):
            return True
        many_x = i < len(x) and x[i][1]
        many_y = j < len(y) and y[j][1]
        if many_x:
            todo.append((i + 1, j))
        if many_y:
            todo.append((i, j + 1))
        if i < len(x) and j < len(y) and _same_char_possible(x[i][0], y[j][0]):
            todo.append((i if many_x else i + 1, j if many_y else j + 1))
    return False


@lru_cache(maxsize=4096)
def _items(pattern: Pattern) -> tuple[Item, ...]:
    items: list[Item] = []
    for part in pattern.parts:
        if not isinstance(part, Slot):
            items.extend((ch, False) for ch in part)
        elif part.name == CURRENCY:
            items.extend([(_CURRENCY_CHARS, False)] * 3)
        else:
            items.extend(((_VALUE_CHARS, False), (_VALUE_CHARS, True)))
    return tuple(items)


def _same_char_possible(a: str | frozenset[str], b: str | frozenset[str]) -> bool:
    if isinstance(a, str):
        return a == b if isinstance(b, str) else a in b
    return b in a if isinstance(b, str) else not a.isdisjoint(b)
