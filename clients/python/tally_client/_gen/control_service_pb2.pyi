import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from tally_client._gen import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ControlWindow(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTROL_WINDOW_UNSPECIFIED: _ClassVar[ControlWindow]
    CONTROL_WINDOW_HOUR: _ClassVar[ControlWindow]
    CONTROL_WINDOW_DAY: _ClassVar[ControlWindow]
    CONTROL_WINDOW_MONTH: _ClassVar[ControlWindow]

class SweepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SWEEP_KIND_UNSPECIFIED: _ClassVar[SweepKind]
    SWEEP_KIND_TOP_UP: _ClassVar[SweepKind]
    SWEEP_KIND_EXCESS: _ClassVar[SweepKind]

class ControlsSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTROLS_SOURCE_UNSPECIFIED: _ClassVar[ControlsSource]
    CONTROLS_SOURCE_API: _ClassVar[ControlsSource]
    CONTROLS_SOURCE_RULE_SET: _ClassVar[ControlsSource]
CONTROL_WINDOW_UNSPECIFIED: ControlWindow
CONTROL_WINDOW_HOUR: ControlWindow
CONTROL_WINDOW_DAY: ControlWindow
CONTROL_WINDOW_MONTH: ControlWindow
SWEEP_KIND_UNSPECIFIED: SweepKind
SWEEP_KIND_TOP_UP: SweepKind
SWEEP_KIND_EXCESS: SweepKind
CONTROLS_SOURCE_UNSPECIFIED: ControlsSource
CONTROLS_SOURCE_API: ControlsSource
CONTROLS_SOURCE_RULE_SET: ControlsSource

class VelocityLimit(_message.Message):
    __slots__ = ("window", "limit", "sliding")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SLIDING_FIELD_NUMBER: _ClassVar[int]
    window: ControlWindow
    limit: int
    sliding: bool
    def __init__(self, window: _Optional[_Union[ControlWindow, str]] = ..., limit: _Optional[int] = ..., sliding: _Optional[bool] = ...) -> None: ...

class Sweep(_message.Message):
    __slots__ = ("kind", "trigger", "target", "counter_account")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    COUNTER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    kind: SweepKind
    trigger: int
    target: int
    counter_account: _types_pb2.AccountRef
    def __init__(self, kind: _Optional[_Union[SweepKind, str]] = ..., trigger: _Optional[int] = ..., target: _Optional[int] = ..., counter_account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ...) -> None: ...

class AccountControls(_message.Message):
    __slots__ = ("per_voucher_max", "velocity", "allowed_flows", "allowed_counterparties", "team_velocity", "sweeps")
    PER_VOUCHER_MAX_FIELD_NUMBER: _ClassVar[int]
    VELOCITY_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FLOWS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_COUNTERPARTIES_FIELD_NUMBER: _ClassVar[int]
    TEAM_VELOCITY_FIELD_NUMBER: _ClassVar[int]
    SWEEPS_FIELD_NUMBER: _ClassVar[int]
    per_voucher_max: int
    velocity: _containers.RepeatedCompositeFieldContainer[VelocityLimit]
    allowed_flows: _containers.RepeatedScalarFieldContainer[str]
    allowed_counterparties: _containers.RepeatedScalarFieldContainer[str]
    team_velocity: _containers.RepeatedCompositeFieldContainer[VelocityLimit]
    sweeps: _containers.RepeatedCompositeFieldContainer[Sweep]
    def __init__(self, per_voucher_max: _Optional[int] = ..., velocity: _Optional[_Iterable[_Union[VelocityLimit, _Mapping]]] = ..., allowed_flows: _Optional[_Iterable[str]] = ..., allowed_counterparties: _Optional[_Iterable[str]] = ..., team_velocity: _Optional[_Iterable[_Union[VelocityLimit, _Mapping]]] = ..., sweeps: _Optional[_Iterable[_Union[Sweep, _Mapping]]] = ...) -> None: ...

class WindowUsage(_message.Message):
    __slots__ = ("limit", "team", "spent")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    limit: VelocityLimit
    team: bool
    spent: int
    def __init__(self, limit: _Optional[_Union[VelocityLimit, _Mapping]] = ..., team: _Optional[bool] = ..., spent: _Optional[int] = ...) -> None: ...

class SetAccountControlsRequest(_message.Message):
    __slots__ = ("request_id", "account", "controls")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    account: _types_pb2.AccountRef
    controls: AccountControls
    def __init__(self, request_id: _Optional[str] = ..., account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ..., controls: _Optional[_Union[AccountControls, _Mapping]] = ...) -> None: ...

class SetAccountControlsResponse(_message.Message):
    __slots__ = ("account_id", "controls", "usage")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    controls: AccountControls
    usage: _containers.RepeatedCompositeFieldContainer[WindowUsage]
    def __init__(self, account_id: _Optional[str] = ..., controls: _Optional[_Union[AccountControls, _Mapping]] = ..., usage: _Optional[_Iterable[_Union[WindowUsage, _Mapping]]] = ...) -> None: ...

class GetAccountControlsRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: _types_pb2.AccountRef
    def __init__(self, account: _Optional[_Union[_types_pb2.AccountRef, _Mapping]] = ...) -> None: ...

class GetAccountControlsResponse(_message.Message):
    __slots__ = ("account_id", "controls", "usage", "update_time", "source", "template_pattern")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_PATTERN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    controls: AccountControls
    usage: _containers.RepeatedCompositeFieldContainer[WindowUsage]
    update_time: _timestamp_pb2.Timestamp
    source: ControlsSource
    template_pattern: str
    def __init__(self, account_id: _Optional[str] = ..., controls: _Optional[_Union[AccountControls, _Mapping]] = ..., usage: _Optional[_Iterable[_Union[WindowUsage, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[ControlsSource, str]] = ..., template_pattern: _Optional[str] = ...) -> None: ...
