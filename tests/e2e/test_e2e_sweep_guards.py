"""Sweeps are held to every money-safety check a posting is, over the real gRPC wire on SQLite and PostgreSQL:
an excess sweep or a top-up never takes a security deposit below what secures its credit, nor a bound credit
account past the limit its deposit carries, in the posting that crosses the line and at the day close; it
moves what the checks allow (or nothing) and never refuses the posting that called for it. A top-up is the
funding account's spend (its controls hold and its counters count it); the swept account's own controls do
not hold a sweep."""

from __future__ import annotations

import random
import threading

import grpc

from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import control_service_pb2 as pb
from tally.v1 import day_service_pb2 as day_pb
from tally.v1 import day_service_pb2_grpc as day_grpc
from tally.v1 import types_pb2
from tests.e2e.conftest import Server, adjustment_request, error_info, line, md, ref, transfer_request
from tests.e2e.test_e2e_controls import DAY, controls, refused, set_controls

TOP_UP, EXCESS = pb.SWEEP_KIND_TOP_UP, pb.SWEEP_KIND_EXCESS


def secure(srv: Server, t: str, credit: str, deposit: str, ratio_bps: int, bind: bool = False) -> None:
    srv.accounts().SetAccountSecurity(acc_pb.SetAccountSecurityRequest(
        request_id=srv.request_id("secure"), credit_account=ref(credit), deposit_account=ref(deposit),
        ratio_bps=ratio_bps, bind_credit_limit=bind), metadata=md(t))


def secured_pair(srv: Server, t: str, deposit_funds: int, drawn: int) -> None:
    """`line` draws `drawn` on credit secured at 50% by `dep`: `dep` must keep 2 x drawn."""
    srv.create_account(t, "line", "credit", credit_limit=10**9)
    srv.create_account(t, "dep", "security_deposit")
    for code in ("savings", "vendor", "ops"):
        srv.create_account(t, code)
    srv.fund(t, "dep", deposit_funds)
    secure(srv, t, "line", "dep", 5_000)
    srv.transfer(t, "line", "vendor", drawn)


def pay_in(srv: Server, t: str, code: str, amount: int) -> post_pb.PostResponse:
    """Money in from the tenant's funding account, with whatever sweep it calls for."""
    source = srv.funding_account(t).code
    request = adjustment_request(srv.request_id(f"in-{code}"), [line(source, "debit", amount),
                                                                 line(code, "credit", amount)])
    return srv.accounting().Post(request, metadata=md(t))


def sweep(kind: int, trigger: int, target: int, other: str) -> pb.Sweep:
    return pb.Sweep(kind=kind, trigger=trigger, target=target, counter_account=ref(other))


def test_an_excess_sweep_keeps_what_a_security_deposit_secures(shared_server: Server) -> None:
    srv, t = shared_server, "guard-excess"
    secured_pair(srv, t, 2_000, 600)  # dep must keep 1,200
    set_controls(srv, t, "dep", sweeps=[sweep(EXCESS, 2_500, 500, "savings")])

    posted = pay_in(srv, t, "dep", 1_000)  # 3,000: past the ceiling; down to max(500, 1,200), not to 500
    assert (srv.current(t, "dep"), srv.current(t, "savings")) == (1_200, 1_800)
    swept = [v for v in srv.all_vouchers(t) if v.flow_type == "sweep"]
    assert [(v.request_id, v.metadata["sweep"]) for v in swept] == [(posted.vouchers[0].request_id, "excess")]
    # More credit drawn: the deposit must keep 3,200 and has 1,200. Funded past the ceiling again but not past
    # what it keeps, the sweep moves nothing, and the funding itself is posted.
    srv.transfer(t, "line", "vendor", 1_000)
    assert len(pay_in(srv, t, "dep", 1_400).vouchers) == 1
    assert srv.current(t, "dep") == 2_600
    assert len(pay_in(srv, t, "dep", 700).vouchers) == 2  # 3,300: the excess above what it keeps (3,200) goes
    assert (srv.current(t, "dep"), srv.current(t, "savings")) == (3_200, 1_900)
    assert len([v for v in srv.all_vouchers(t) if v.flow_type == "sweep"]) == 2
    report = srv.accounts().GetAccountSecurity(acc_pb.GetAccountSecurityRequest(account=ref("dep")),
                                               metadata=md(t))
    assert report.required_deposit == 3_200


def test_a_top_up_never_draws_a_security_deposit_below_what_it_secures(shared_server: Server) -> None:
    srv, t = shared_server, "guard-topup"
    secured_pair(srv, t, 1_500, 600)  # dep must keep 1,200: it can give 300
    srv.fund(t, "ops", 200)
    set_controls(srv, t, "ops", sweeps=[sweep(TOP_UP, 100, 1_000, "dep")])

    spend, top_up = srv.transfer(t, "ops", "vendor", 150).vouchers  # ops 50: wants 950, dep gives 300
    assert top_up.metadata["sweep"] == "top_up"
    assert (srv.current(t, "ops"), srv.current(t, "dep")) == (350, 1_200)
    assert spend.flow_type == "transfer"
    # Nothing left to give: the next spend is posted alone.
    assert len(srv.transfer(t, "ops", "vendor", 300).vouchers) == 1
    assert (srv.current(t, "ops"), srv.current(t, "dep")) == (50, 1_200)


def test_a_top_up_from_a_bound_credit_line_stays_within_the_limit_its_deposit_carries(
        shared_server: Server) -> None:
    srv, t = shared_server, "guard-bound"
    srv.create_account(t, "line", "credit", credit_limit=10**9)
    srv.create_account(t, "dep", "security_deposit")
    for code in ("ops", "vendor"):
        srv.create_account(t, code)
    srv.fund(t, "dep", 1_000)
    secure(srv, t, "line", "dep", 5_000, bind=True)  # line may draw 500
    srv.fund(t, "ops", 200)
    set_controls(srv, t, "ops", sweeps=[sweep(TOP_UP, 100, 2_000, "line")])
    srv.transfer(t, "ops", "vendor", 150)  # ops 50: wants 1,950, the line gives its 500
    assert (srv.current(t, "ops"), srv.current(t, "line")) == (550, -500)
    assert refused(lambda: srv.transfer(t, "line", "vendor", 1))[1] == "INSUFFICIENT_FUNDS"


def test_the_day_close_sweeps_keep_what_a_deposit_secures(shared_server: Server) -> None:
    srv, t = shared_server, "guard-close"
    secured_pair(srv, t, 3_000, 600)  # dep must keep 1,200
    srv.create_account(t, "line-2", "credit", credit_limit=10**9)
    srv.create_account(t, "treasury", "security_deposit")
    srv.fund(t, "treasury", 1_000)
    secure(srv, t, "line-2", "treasury", 5_000)
    srv.transfer(t, "line-2", "vendor", 300)  # the treasury must keep 600
    srv.fund(t, "ops", 20)
    date = srv.fund(t, "savings", 1).accounting_date
    set_controls(srv, t, "dep", sweeps=[sweep(EXCESS, 2_000, 100, "savings")])
    set_controls(srv, t, "ops", sweeps=[sweep(TOP_UP, 100, 5_000, "treasury")])

    close = day_pb.CloseAccountingDayRequest(accounting_date=date, early=True, request_id="guard-close-1")
    day_grpc.DayServiceStub(srv._default).CloseAccountingDay(close, metadata=md(t))
    assert (srv.current(t, "dep"), srv.current(t, "savings")) == (1_200, 1 + 1_800)
    assert (srv.current(t, "ops"), srv.current(t, "treasury")) == (20 + 400, 600)


def test_a_sweep_that_cannot_run_never_refuses_the_posting(shared_server: Server) -> None:
    srv, t = shared_server, "guard-frozen"
    for code in ("ops", "treasury", "vendor"):
        srv.create_account(t, code)
    srv.fund(t, "treasury", 1_000)
    srv.fund(t, "ops", 200)
    set_controls(srv, t, "ops", sweeps=[sweep(TOP_UP, 100, 500, "treasury")])
    srv.set_status(t, "treasury", types_pb2.ACCOUNT_STATUS_FROZEN)
    assert len(srv.transfer(t, "ops", "vendor", 150).vouchers) == 1
    assert (srv.current(t, "ops"), srv.current(t, "treasury")) == (50, 1_000)
    srv.set_status(t, "treasury", types_pb2.ACCOUNT_STATUS_ACTIVE)
    assert len(srv.transfer(t, "ops", "vendor", 10).vouchers) == 2  # the next posting tops it up
    assert (srv.current(t, "ops"), srv.current(t, "treasury")) == (500, 540)


def test_a_top_up_is_the_funding_accounts_spend_and_the_swept_accounts_controls_do_not_hold_it(
        shared_server: Server) -> None:
    srv, t = shared_server, "guard-spend"
    for code in ("ops", "treasury", "savings", "vendor"):
        srv.create_account(t, code)
    srv.fund(t, "treasury", 10_000)
    srv.fund(t, "ops", 150)
    set_controls(srv, t, "treasury", velocity=[pb.VelocityLimit(window=DAY, limit=700)])
    set_controls(srv, t, "ops", per_voucher_max=800, velocity=[pb.VelocityLimit(window=DAY, limit=1_000)], sweeps=[
        sweep(TOP_UP, 100, 1_000, "treasury"), sweep(EXCESS, 3_000, 1_000, "savings")])

    _, top_up = srv.transfer(t, "ops", "vendor", 100).vouchers  # ops 50: wants 950, treasury may spend 700
    assert (srv.current(t, "ops"), srv.current(t, "treasury")) == (750, 9_300)
    assert top_up.metadata["controls_checked"] == "treasury:calendar_day"
    assert refused(lambda: srv.transfer(t, "treasury", "vendor", 1))[1] == "VELOCITY_LIMIT_EXCEEDED"
    assert len(srv.transfer(t, "ops", "vendor", 700).vouchers) == 1  # ops 50, and treasury has no room left
    assert srv.current(t, "treasury") == 9_300

    # The swept account's excess sweep passes its own per-voucher limit and does not count as its spend.
    pay_in(srv, t, "ops", 3_000)  # 3,050: 2,050 swept to savings
    assert (srv.current(t, "ops"), srv.current(t, "savings")) == (1_000, 2_050)
    got = controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref("ops")), metadata=md(t))
    assert [u.spent for u in got.usage] == [800]
    got = controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref("treasury")), metadata=md(t))
    assert [u.spent for u in got.usage] == [700]
    # A funding account whose allowed flows leave out `sweep` tops up nothing.
    set_controls(srv, t, "treasury", allowed_flows=["transfer"])
    set_controls(srv, t, "ops", sweeps=[sweep(TOP_UP, 100, 1_000, "treasury")])
    assert len(srv.transfer(t, "ops", "vendor", 950).vouchers) == 1
    assert (srv.current(t, "ops"), srv.current(t, "treasury")) == (50, 9_300)


def test_sweeps_keep_a_deposits_cover_under_many_callers(shared_server: Server) -> None:
    """Callers draw on a bound credit line and pay into its deposit at once while the deposit's excess sweep
    runs in their postings: no pay-in is ever refused, and the deposit always keeps what secures the credit."""
    srv, t = shared_server, "guard-race"
    srv.create_account(t, "line", "credit", credit_limit=10**9)
    srv.create_account(t, "dep", "security_deposit")
    for code in ("savings", "vendor"):
        srv.create_account(t, code)
    srv.fund(t, "dep", 4_000)
    secure(srv, t, "line", "dep", 5_000, bind=True)
    set_controls(srv, t, "dep", sweeps=[sweep(EXCESS, 3_000, 500, "savings")])
    refusals: list[tuple[str, str]] = []
    lock = threading.Lock()

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        stub = srv.accounting(srv.channel())
        source = srv.funding_account(t).code
        for i in range(10):
            if seed % 2:
                request = transfer_request(f"draw-{seed}-{i}", "line", "vendor", rng.randint(1, 300))
            else:
                amount = rng.randint(1, 900)
                request = adjustment_request(f"in-{seed}-{i}", [line(source, "debit", amount),
                                                                line("dep", "credit", amount)])
            try:
                stub.Post(request, metadata=md(t))
            except grpc.RpcError as err:
                with lock:
                    refusals.append(("draw" if seed % 2 else "pay-in", error_info(err)[1]))

    threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {kind for kind, _ in refusals} <= {"draw"}
    assert {reason for _, reason in refusals} <= {"INSUFFICIENT_FUNDS", "CREDIT_LIMIT_EXCEEDED"}
    report = srv.accounts().GetAccountSecurity(acc_pb.GetAccountSecurityRequest(account=ref("dep")),
                                               metadata=md(t))
    assert srv.current(t, "dep") >= report.required_deposit > 0
    assert srv.current(t, "savings") > 0  # the sweep ran
    assert srv.current(t, "vendor") == -srv.current(t, "line")
