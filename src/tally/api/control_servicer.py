"""tally.v1.ControlService: an account's spending controls, team budget and sweeps. Proto <-> domain only."""

from __future__ import annotations

import asyncio

from tally.api.errors import rpc
from tally.api.mapping import enum_in, ref_in, timestamp_from_us
from tally.api.tenancy import tenant_of
from tally.domain.controls import Controls, Sweep, SweepKind, Velocity, Window
from tally.domain.errors import invalid
from tally.service.controls import ControlBook, ControlsSource, ControlsView, SweepSpec
from tally.v1 import control_service_pb2 as pb
from tally.v1 import control_service_pb2_grpc as pb_grpc
from tally.v1 import types_pb2

WINDOWS = {pb.CONTROL_WINDOW_HOUR: Window.HOUR, pb.CONTROL_WINDOW_DAY: Window.DAY,
           pb.CONTROL_WINDOW_MONTH: Window.MONTH}
WINDOWS_PB = {v: k for k, v in WINDOWS.items()}
SWEEP_KINDS = {pb.SWEEP_KIND_TOP_UP: SweepKind.TOP_UP, pb.SWEEP_KIND_EXCESS: SweepKind.EXCESS}
SWEEP_KINDS_PB = {v: k for k, v in SWEEP_KINDS.items()}
SOURCES_PB = {ControlsSource.NONE: pb.CONTROLS_SOURCE_UNSPECIFIED, ControlsSource.API: pb.CONTROLS_SOURCE_API,
              ControlsSource.RULE_SET: pb.CONTROLS_SOURCE_RULE_SET}
LIST_ENTRIES_MAX = 64  # repeated fields of a request: each is bounded again by the domain


def _velocity_in(message: pb.VelocityLimit, field: str) -> Velocity:
    return Velocity(enum_in(WINDOWS, message.window, f"{field}.window"), message.limit, message.sliding)


def controls_in(message: pb.AccountControls) -> tuple[Controls, list[SweepSpec]]:
    for name in ("velocity", "allowed_flows", "allowed_counterparties", "team_velocity", "sweeps"):
        if len(getattr(message, name)) > LIST_ENTRIES_MAX:
            raise invalid("CONTROL_INVALID", f"controls.{name}: too many entries", field=name)
    controls = Controls(
        per_voucher_max=message.per_voucher_max,
        velocity=tuple(_velocity_in(v, "controls.velocity") for v in message.velocity),
        flows=tuple(message.allowed_flows), counterparties=tuple(message.allowed_counterparties),
        team_velocity=tuple(_velocity_in(v, "controls.team_velocity") for v in message.team_velocity))
    sweeps = [SweepSpec(enum_in(SWEEP_KINDS, s.kind, "controls.sweeps.kind"), s.trigger, s.target,
                        ref_in(s.counter_account, "controls.sweeps.counter_account")) for s in message.sweeps]
    return controls, sweeps


def _velocity_out(v: Velocity) -> pb.VelocityLimit:
    return pb.VelocityLimit(window=WINDOWS_PB[v.window], limit=v.limit, sliding=v.sliding)


def controls_out(controls: Controls) -> pb.AccountControls:
    return pb.AccountControls(
        per_voucher_max=controls.per_voucher_max, velocity=[_velocity_out(v) for v in controls.velocity],
        allowed_flows=controls.flows, allowed_counterparties=controls.counterparties,
        team_velocity=[_velocity_out(v) for v in controls.team_velocity],
        sweeps=[pb.Sweep(kind=SWEEP_KINDS_PB[s.kind], trigger=s.trigger, target=s.target,
                         counter_account=_counter_ref(s)) for s in controls.sweeps])


def _counter_ref(sweep: Sweep) -> types_pb2.AccountRef:
    # A template's sweep names its other account by code: it may not be opened yet.
    if sweep.counter_account_id:
        return types_pb2.AccountRef(id=sweep.counter_account_id)
    return types_pb2.AccountRef(code=sweep.counter_code)


def usage_out(view: ControlsView) -> list[pb.WindowUsage]:
    return [pb.WindowUsage(limit=_velocity_out(u.velocity), team=u.scope.value == "team", spent=u.spent)
            for u in view.usage]


class ControlServicer(pb_grpc.ControlServiceServicer):
    def __init__(self, book: ControlBook) -> None:
        self.book = book

    @rpc
    async def SetAccountControls(self, request: pb.SetAccountControlsRequest,
                                 context) -> pb.SetAccountControlsResponse:
        tenant_id = tenant_of(context)
        controls, sweeps = controls_in(request.controls)
        view = await asyncio.to_thread(self.book.set_controls, tenant_id, ref_in(request.account), controls, sweeps,
                                       request.request_id)
        return pb.SetAccountControlsResponse(account_id=view.account.id, controls=controls_out(view.controls),
                                             usage=usage_out(view))

    @rpc
    async def GetAccountControls(self, request: pb.GetAccountControlsRequest,
                                 context) -> pb.GetAccountControlsResponse:
        view = await asyncio.to_thread(self.book.get_controls, tenant_of(context), ref_in(request.account))
        response = pb.GetAccountControlsResponse(account_id=view.account.id, controls=controls_out(view.controls),
                                                 usage=usage_out(view), source=SOURCES_PB[view.source],
                                                 template_pattern=view.template_pattern)
        if view.updated_us:
            response.update_time.CopyFrom(timestamp_from_us(view.updated_us))
        return response
