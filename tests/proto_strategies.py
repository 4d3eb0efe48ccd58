"""Hypothesis strategies for protobuf messages, built from their descriptors.

``messages(descriptor, hints)`` draws well-formed messages of any type: every scalar type with values at
and around its bounds, strings from empty to long (unicode, astral characters, NUL), bytes, enums
including unknown numbers (proto3 enums are open), nested messages to a bounded depth, repeated and map
fields of bounded length, oneofs (at most one member set), ``optional`` presence, and the well-known types
Timestamp and FieldMask with edge values (a Timestamp whose nanos are out of range is still a
well-formed message on the wire).

``Hints`` mixes in realistic values (ids that exist, known currencies, balanced lines...) so that drawn
requests get past validation and reach deeper code. Each drawn message tree first draws a *realism* in
percent; each hinted field then takes its hint with that probability, so some messages are all noise,
some all realistic, and most in between.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from google.protobuf import descriptor as _d
from google.protobuf import message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
TIMESTAMP_SECONDS_MIN = -62_135_596_800
TIMESTAMP_SECONDS_MAX = 253_402_300_799
NANOS_MAX = 999_999_999

REPEATED_MAX = 5
DEPTH_MAX = 4
TEXT_LENGTH_EDGES = (1, 2, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1024, 4095, 4096, 4097)
TEXT_LONG_MAX = 5000  # characters; 4 bytes each at most: well below gRPC's 4 MiB message limit
REALISM_LEVELS = (0, 50, 90, 100)

_F = _d.FieldDescriptor
_INT_RANGES = {
    _F.TYPE_INT32: INT32, _F.TYPE_SINT32: INT32, _F.TYPE_SFIXED32: INT32,
    _F.TYPE_INT64: INT64, _F.TYPE_SINT64: INT64, _F.TYPE_SFIXED64: INT64,
    _F.TYPE_UINT32: UINT32, _F.TYPE_FIXED32: UINT32,
    _F.TYPE_UINT64: UINT64, _F.TYPE_FIXED64: UINT64,
}
_SPECIAL_TEXT = (
    " ", "  ", "\t", "\n", "a\n", "\x00", "a\x00b", "\x7f", "\u00e9", "e\u0301", "\u202e", "\ufeff", "\ufffd",
    "\U0001f600", "\U0010ffff", "\u4e2d\u6587", "%", "%s%n", "'", "\"", "\\", "../../etc/passwd", "' OR 1=1 --",
    "null", "None", "0", "-1", "1e309", "NaN", "USD", "usd", "{}", "[]", "a:b", "a.b", "*", "_", "-",
)


# ------------------------------------------------------------------------------------------ scalars


def ints(lo: int, hi: int) -> SearchStrategy[int]:
    """Integers of [lo, hi], with the bounds, their neighbours and small values drawn often."""
    edges = {lo, lo + 1, hi - 1, hi, -1, 0, 1, 2, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32,
             2**53, 2**53 + 1, 2**62, 10**6, 10**9, 10**12, 10**18, -(10**18)}
    edges = sorted(e for e in edges if lo <= e <= hi)
    return st.one_of(st.sampled_from(edges), st.integers(max(lo, -1000), min(hi, 1000)), st.integers(lo, hi))


def texts(length_max: int = TEXT_LONG_MAX) -> SearchStrategy[str]:
    """Any valid proto string (UTF-8: no surrogates): empty, short arbitrary unicode (NUL and astral
    characters included), tricky specials, runs at the usual length limits, long arbitrary text."""
    runs = st.builds(lambda ch, n: ch * n, st.sampled_from(["a", "\u00e9", "\U0001f600", " ", "\x00", "9"]),
                     st.sampled_from([n for n in TEXT_LENGTH_EDGES if n <= length_max]))
    return st.one_of(
        st.just(""),
        st.text(max_size=16),
        st.sampled_from(_SPECIAL_TEXT),
        runs,
        st.text(min_size=17, max_size=min(600, length_max)),
    )


def _scalar(field: _d.FieldDescriptor) -> SearchStrategy:
    t = field.type
    if t in _INT_RANGES:
        return ints(*_INT_RANGES[t])
    if t == _F.TYPE_BOOL:
        return st.booleans()
    if t == _F.TYPE_STRING:
        return texts()
    if t == _F.TYPE_BYTES:
        return st.one_of(st.just(b""), st.binary(max_size=64), st.binary(min_size=1000, max_size=5000))
    if t == _F.TYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if t == _F.TYPE_FLOAT:
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if t == _F.TYPE_ENUM:
        return enums(field.enum_type)
    raise TypeError(f"no strategy for field type {t} of {field.full_name}")


def enums(enum: _d.EnumDescriptor, *, known_only: bool = False) -> SearchStrategy[int]:
    known = sorted({v.number for v in enum.values})
    if known_only:
        return st.sampled_from([n for n in known if n != 0] or known)
    if getattr(enum, "is_closed", False):  # a closed (proto2) enum cannot hold an unknown value
        return st.sampled_from(known)
    unknown = st.one_of(st.sampled_from([max(known) + 1, -1, INT32[0], INT32[1]]), st.integers(*INT32))
    return st.one_of(st.sampled_from(known), unknown)


# ------------------------------------------------------------------------------------------ well-known types


def timestamps(now_s: int | None = None) -> SearchStrategy[Message]:
    """Timestamps in and out of the valid range; the seconds/nanos of each are drawn independently."""
    from google.protobuf import timestamp_pb2

    seconds_edges = [TIMESTAMP_SECONDS_MIN - 1, TIMESTAMP_SECONDS_MIN, TIMESTAMP_SECONDS_MAX,
                     TIMESTAMP_SECONDS_MAX + 1, -1, 0, 1, 2**31 - 1, 2**31, 2**62, INT64[0], INT64[1]]
    if now_s is not None:
        seconds_edges += [now_s - 86_400, now_s - 1, now_s, now_s + 1, now_s + 3_600, now_s + 86_400 * 365]
    seconds = st.one_of(st.sampled_from(seconds_edges), st.integers(TIMESTAMP_SECONDS_MIN, TIMESTAMP_SECONDS_MAX),
                        st.integers(*INT64))
    nanos = st.one_of(st.sampled_from([0, 1, NANOS_MAX, NANOS_MAX + 1, -1, INT32[0], INT32[1]]),
                      st.integers(0, NANOS_MAX), st.integers(*INT32))
    return st.builds(timestamp_pb2.Timestamp, seconds=seconds, nanos=nanos)


def field_masks(paths: SearchStrategy[str] | None = None) -> SearchStrategy[Message]:
    from google.protobuf import field_mask_pb2

    generic = st.one_of(st.sampled_from(["", "*", "name", "a.b", "name.x", "Name", "credit-limit", "id"]),
                        st.from_regex(r"[a-z_][a-z0-9_.]{0,20}", fullmatch=True), texts(200))
    element = generic if paths is None else st.one_of(paths, generic)
    return st.builds(lambda ps: field_mask_pb2.FieldMask(paths=ps), st.lists(element, max_size=REPEATED_MAX))


# ------------------------------------------------------------------------------------------ messages


@dataclasses.dataclass(frozen=True)
class Hints:
    """Realistic values. ``fields`` is keyed by a field's full name (``tally.v1.GetHoldRequest.hold_id``)
    or its bare name (``hold_id``, the fallback) and gives values of that field (one element for repeated
    fields, a whole dict for maps); ``lists`` gives whole lists of a repeated field (lines that balance);
    ``messages`` is keyed by a message type's full name and gives whole messages of that type."""

    fields: Mapping[str, SearchStrategy] = dataclasses.field(default_factory=dict)
    lists: Mapping[str, SearchStrategy[list]] = dataclasses.field(default_factory=dict)
    messages: Mapping[str, SearchStrategy[Message]] = dataclasses.field(default_factory=dict)
    now_s: int | None = None

    def field(self, field: _d.FieldDescriptor) -> SearchStrategy | None:
        return self.fields.get(field.full_name, self.fields.get(field.name))

    def whole_list(self, field: _d.FieldDescriptor) -> SearchStrategy[list] | None:
        return self.lists.get(field.full_name, self.lists.get(field.name))


def message_class(descriptor: _d.Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def messages(descriptor: _d.Descriptor, hints: Hints | None = None, *, depth_max: int = DEPTH_MAX,
             repeated_max: int = REPEATED_MAX) -> SearchStrategy[Message]:
    """Well-formed messages of ``descriptor``'s type (see the module docstring): drawn at a realism level,
    or drawn all realistic and then one scalar field anywhere in it replaced by an arbitrary value."""
    builder = _Builder(hints or Hints(), depth_max, repeated_max)
    by_realism = st.sampled_from(REALISM_LEVELS).flatmap(lambda realism: builder.submessage(descriptor, 0, realism))
    return st.one_of(by_realism, _one_field_off(builder, descriptor))


def _is_repeated(field: _d.FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)
    return flag if flag is not None else field.label == _F.LABEL_REPEATED


def _is_map(field: _d.FieldDescriptor) -> bool:
    return field.type == _F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _map_fields(field: _d.FieldDescriptor) -> tuple[_d.FieldDescriptor, _d.FieldDescriptor]:
    entry = field.message_type.fields_by_name
    return entry["key"], entry["value"]


def _is_synthetic(oneof: _d.OneofDescriptor) -> bool:
    """The oneof protoc makes for a proto3 ``optional`` field: not a real choice."""
    return len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}"


def real_oneofs(descriptor: _d.Descriptor) -> list[_d.OneofDescriptor]:
    return [o for o in descriptor.oneofs if not _is_synthetic(o)]


@dataclasses.dataclass(frozen=True)
class _Builder:
    hints: Hints
    depth_max: int
    repeated_max: int

    def roll(self, realism: int) -> SearchStrategy[bool]:
        return st.integers(0, 99).map(lambda n: n < realism)

    def message(self, descriptor: _d.Descriptor, depth: int, realism: int) -> SearchStrategy[Message]:
        return _message_from(self, descriptor, depth, realism)

    def value(self, field: _d.FieldDescriptor, depth: int, realism: int, *, hinted: bool = True) -> SearchStrategy:
        """One value of the field (one element for a repeated field)."""
        hint = self.hints.field(field) if hinted else None
        generic = self._generic(field, depth, realism)
        if hint is None:
            return generic
        return self.roll(realism).flatmap(lambda real: hint if real else generic)

    def _generic(self, field: _d.FieldDescriptor, depth: int, realism: int) -> SearchStrategy:
        if field.type == _F.TYPE_ENUM:  # a realistic enum is a known, non-zero value
            return self.roll(realism).flatmap(lambda real: enums(field.enum_type, known_only=real))
        if field.type != _F.TYPE_MESSAGE:
            return _scalar(field)
        return self.submessage(field.message_type, depth + 1, realism)

    def submessage(self, descriptor: _d.Descriptor, depth: int, realism: int) -> SearchStrategy[Message]:
        name = descriptor.full_name
        if name == "google.protobuf.Timestamp":
            generic = timestamps(self.hints.now_s)
        elif name == "google.protobuf.FieldMask":
            generic = field_masks()
        elif depth > self.depth_max:
            generic = st.just(message_class(descriptor)())
        else:
            generic = self.message(descriptor, depth, realism)
        hint = self.hints.messages.get(name)
        if hint is None:
            return generic
        return self.roll(realism).flatmap(lambda real: hint if real else generic)


@st.composite
def _message_from(draw, b: _Builder, descriptor: _d.Descriptor, depth: int, realism: int) -> Message:
    msg = message_class(descriptor)()
    chosen = set()
    for oneof in real_oneofs(descriptor):
        member = draw(st.sampled_from([None, *oneof.fields]) if realism < 50
                      else st.sampled_from(list(oneof.fields)))
        if member is not None:
            chosen.add(member.name)
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and not _is_synthetic(oneof):
            if field.name in chosen:
                _set(msg, field, b.value(field, depth, realism), draw)
            continue
        if _is_map(field):
            key_field, value_field = _map_fields(field)
            hint = b.hints.field(field)  # a hint for a map gives whole dicts
            generic = st.dictionaries(b.value(key_field, depth, realism, hinted=False),
                                      b.value(value_field, depth, realism, hinted=False),
                                      max_size=b.repeated_max)
            entries = generic if hint is None else b.roll(realism).flatmap(lambda real, g=generic, h=hint: h if real
                                                                             else g)
            for key, value in draw(entries).items():
                if value_field.type == _F.TYPE_MESSAGE:
                    getattr(msg, field.name)[key].CopyFrom(value)
                else:
                    getattr(msg, field.name)[key] = value
            continue
        if _is_repeated(field):
            lists = st.lists(b.value(field, depth, realism), max_size=b.repeated_max)
            whole = b.hints.whole_list(field)
            if whole is not None:
                lists = b.roll(realism).flatmap(lambda real, g=lists, h=whole: h if real else g)
            values = draw(lists)
            getattr(msg, field.name).extend(values)
            continue
        # A field with presence (a message, an `optional` scalar) may stay unset; realistic ones rarely do.
        if field.has_presence and not draw(b.roll(max(realism, 50))):
            continue
        _set(msg, field, b.value(field, depth, realism), draw)
    return msg


def _scalar_slots(msg: Message) -> list[tuple[Message, _d.FieldDescriptor]]:
    """Every scalar (non-message, non-map) field of the message and of the messages set inside it."""
    slots = []
    for field in msg.DESCRIPTOR.fields:
        if _is_map(field):
            continue
        if field.type != _F.TYPE_MESSAGE:
            slots.append((msg, field))
        elif _is_repeated(field):
            for item in getattr(msg, field.name):
                slots += _scalar_slots(item)
        elif msg.HasField(field.name):
            slots += _scalar_slots(getattr(msg, field.name))
    return slots


@st.composite
def _one_field_off(draw, b: _Builder, descriptor: _d.Descriptor) -> Message:
    """A realistic message with one scalar field, anywhere in it, set to an arbitrary value."""
    msg = message_class(descriptor)()
    msg.CopyFrom(draw(b.submessage(descriptor, 0, 100)))
    slots = _scalar_slots(msg)
    if not slots:
        return msg
    target, field = draw(st.sampled_from(slots))
    value = b._generic(field, 0, 0)
    if _is_repeated(field):
        container = getattr(target, field.name)
        del container[:]
        container.extend(draw(st.lists(value, min_size=1, max_size=b.repeated_max)))
    else:
        setattr(target, field.name, draw(value))
    return msg


def _set(msg: Message, field: _d.FieldDescriptor, strategy: SearchStrategy, draw) -> None:
    value = draw(strategy)
    if field.type == _F.TYPE_MESSAGE:
        getattr(msg, field.name).CopyFrom(value)
    else:
        setattr(msg, field.name, value)


# ------------------------------------------------------------------------------------------ fixed extremes


EXTREME_TEXT_MAX = "\U0001f600" * 4097  # 16 KiB of astral characters: past every length limit
EXTREME_TEXT_MIN = "\x00"


def _extreme_scalar(field: _d.FieldDescriptor, high: bool, i: int):
    t = field.type
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        return hi if high else lo
    if t == _F.TYPE_BOOL:
        return high
    if t == _F.TYPE_STRING:
        return (EXTREME_TEXT_MAX if high else EXTREME_TEXT_MIN) + ("" if i == 0 else str(i))
    if t == _F.TYPE_BYTES:
        return b"\xff" * 4097 if high else b"\x00"
    if t in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return float("inf") if high else float("nan")
    if t == _F.TYPE_ENUM:
        if getattr(field.enum_type, "is_closed", False):
            numbers = [v.number for v in field.enum_type.values]
            return max(numbers) if high else min(numbers)
        return INT32[1] if high else INT32[0]
    raise TypeError(f"no extreme for field type {t} of {field.full_name}")


def extreme(descriptor: _d.Descriptor, *, high: bool, pick: int = 0, depth_max: int = 3,
            repeated: int = REPEATED_MAX, depth: int = 0) -> Message:
    """A message with every field set to its highest (or lowest) value: repeated fields ``repeated``
    times, maps with ``repeated`` entries, messages to ``depth_max``; of each oneof, member ``pick``
    (modulo its size)."""
    msg = message_class(descriptor)()
    picked = {o.fields[pick % len(o.fields)].name for o in real_oneofs(descriptor)}
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and not _is_synthetic(oneof) and field.name not in picked:
            continue
        if field.type == _F.TYPE_MESSAGE and depth >= depth_max:
            continue
        if _is_map(field):
            key_field, value_field = _map_fields(field)
            for i in range(repeated):
                key = _extreme_scalar(key_field, high, i)
                if key_field.type in _INT_RANGES:
                    key = key - i if high else key + i
                elif key_field.type == _F.TYPE_BOOL:
                    key = bool(i % 2)
                if value_field.type == _F.TYPE_MESSAGE:
                    getattr(msg, field.name)[key].CopyFrom(extreme(value_field.message_type, high=high, pick=pick,
                                                                   depth_max=depth_max, repeated=repeated,
                                                                   depth=depth + 1))
                else:
                    getattr(msg, field.name)[key] = _extreme_scalar(value_field, high, 0)
            continue
        count = repeated if _is_repeated(field) else 1
        values = [extreme(field.message_type, high=high, pick=pick, depth_max=depth_max, repeated=repeated,
                          depth=depth + 1) if field.type == _F.TYPE_MESSAGE else _extreme_scalar(field, high, 0)
                  for _ in range(count)]
        if _is_repeated(field):
            getattr(msg, field.name).extend(values)
        elif field.type == _F.TYPE_MESSAGE:
            getattr(msg, field.name).CopyFrom(values[0])
        else:
            setattr(msg, field.name, values[0])
    return msg


def _picks(descriptor: _d.Descriptor, depth: int = 0, depth_max: int = 3) -> int:
    """The largest oneof in the message tree: how many picks it takes to set each member once."""
    sizes = [len(o.fields) for o in real_oneofs(descriptor)]
    if depth < depth_max:
        sizes += [_picks(f.message_type, depth + 1, depth_max) for f in descriptor.fields
                  if f.type == _F.TYPE_MESSAGE and not _is_map(f)]
    return max(sizes, default=1)


def extreme_messages(descriptor: _d.Descriptor) -> list[tuple[str, Message]]:
    """The empty message, then every field at its highest and at its lowest, for each oneof member."""
    out = [("empty", message_class(descriptor)())]
    for pick in range(_picks(descriptor)):
        for high in (True, False):
            out.append((f"{'max' if high else 'min'}#{pick}", extreme(descriptor, high=high, pick=pick)))
    return out
