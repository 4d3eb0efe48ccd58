"""Spending controls, team budgets and sweeps over the real gRPC wire, on SQLite and PostgreSQL: each control
refuses with its own FAILED_PRECONDITION reason and changes nothing, an accepted posting carries the evidence
of the controls it passed, a parent's team budget binds its children's spend together, sweeps post in the
same answer as the posting that crossed the line, and a velocity limit holds exactly under many callers."""

from __future__ import annotations

import contextlib
import json
import random
import threading

import grpc
import pytest

from tally import cli
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import bookkeeping_service_pb2 as book_pb
from tally.v1 import bookkeeping_service_pb2_grpc as book_grpc
from tally.v1 import control_service_pb2 as pb
from tally.v1 import control_service_pb2_grpc as pb_grpc
from tally.v1 import day_service_pb2 as day_pb
from tally.v1 import day_service_pb2_grpc as day_grpc
from tally.v1 import flows_pb2
from tests.e2e.conftest import Server, TenantKeys, adjustment_request, error_info, line, md, ref, transfer_request

DAY = pb.CONTROL_WINDOW_DAY


def controls(srv: Server) -> pb_grpc.ControlServiceStub:
    return pb_grpc.ControlServiceStub(srv._default)


def set_controls(srv: Server, tenant: str, code: str, **fields) -> pb.SetAccountControlsResponse:
    request = pb.SetAccountControlsRequest(request_id=srv.request_id("controls"), account=ref(code),
                                           controls=pb.AccountControls(**fields))
    return controls(srv).SetAccountControls(request, metadata=md(tenant))


def refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    code, reason, _ = error_info(caught.value)
    return code, reason


FP = grpc.StatusCode.FAILED_PRECONDITION


def test_each_control_refuses_with_its_reason_and_a_passing_posting_carries_the_evidence(
        shared_server: Server) -> None:
    srv, t = shared_server, "ctl-own"
    for code in ("alice", "bob", "carol"):
        srv.create_account(t, code)
    srv.fund(t, "alice", 10_000)
    set_controls(srv, t, "alice", per_voucher_max=1_000, velocity=[pb.VelocityLimit(window=DAY, limit=1_500)],
                 allowed_flows=["transfer"], allowed_counterparties=["b*"])

    assert refused(lambda: srv.transfer(t, "alice", "bob", 1_001)) == (FP, "SPEND_LIMIT_EXCEEDED")
    assert refused(lambda: srv.transfer(t, "alice", "carol", 10)) == (FP, "COUNTERPARTY_NOT_ALLOWED")
    adjustment = adjustment_request(srv.request_id("adj"), [line("alice", "debit", 5), line("bob", "credit", 5)])
    assert refused(lambda: srv.accounting().Post(adjustment, metadata=md(t))) == (FP, "FLOW_NOT_ALLOWED")

    [voucher] = srv.transfer(t, "alice", "bob", 1_000).vouchers
    assert voucher.metadata["policy"] == "limit_check.passed"
    assert voucher.metadata["controls_checked"] == ("alice:flows,alice:per_voucher_max,alice:counterparties,"
                                                    "alice:calendar_day")
    assert refused(lambda: srv.transfer(t, "alice", "bob", 501)) == (FP, "VELOCITY_LIMIT_EXCEEDED")
    srv.transfer(t, "alice", "bob", 500)
    assert refused(lambda: srv.transfer(t, "alice", "bob", 1)) == (FP, "VELOCITY_LIMIT_EXCEEDED")

    # Money coming in is no spend; refusals changed nothing.
    srv.fund(t, "alice", 7)
    assert srv.current(t, "alice") == 10_000 - 1_500 + 7
    assert srv.current(t, "carol") == 0
    got = controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref("alice")), metadata=md(t))
    assert [(u.limit.limit, u.team, u.spent) for u in got.usage] == [(1_500, False, 1_500)]
    assert list(got.controls.allowed_counterparties) == ["b*"]
    # An uncontrolled account's vouchers carry no evidence mark.
    assert "policy" not in srv.transfer(t, "bob", "carol", 1).vouchers[0].metadata

    # A request_id reused with other controls is refused; resent with the same ones, it is answered again.
    again = pb.SetAccountControlsRequest(request_id="ctl-clear", account=ref("alice"))
    controls(srv).SetAccountControls(again, metadata=md(t))
    assert controls(srv).SetAccountControls(again, metadata=md(t)).controls == pb.AccountControls()
    again.controls.per_voucher_max = 5
    assert refused(lambda: controls(srv).SetAccountControls(again, metadata=md(t))) == (
        grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    # Cleared, alice may spend again; a caller cannot forge the evidence key.
    srv.transfer(t, "alice", "carol", 2_000)
    forged = adjustment_request(srv.request_id("forge"), [line("alice", "debit", 1), line("bob", "credit", 1)],
                                metadata={"policy": "limit_check.passed"})
    assert refused(lambda: srv.accounting().Post(forged, metadata=md(t)))[1] == "METADATA_KEY_RESERVED"


@pytest.mark.parametrize(("fields", "reason"), [
    ({"per_voucher_max": -1}, "CONTROL_INVALID"),
    ({"velocity": [pb.VelocityLimit(window=DAY, limit=0)]}, "CONTROL_INVALID"),
    ({"velocity": [pb.VelocityLimit(limit=5)]}, "FIELD_REQUIRED"),
    ({"velocity": [pb.VelocityLimit(window=DAY, limit=5), pb.VelocityLimit(window=DAY, limit=6)]},
     "CONTROL_INVALID"),
    ({"allowed_counterparties": ["no spaces"]}, "ACCOUNT_CODE_INVALID"),
    ({"sweeps": [pb.Sweep(kind=pb.SWEEP_KIND_TOP_UP, trigger=10, target=5, counter_account=ref("bad-treasury"))]},
     "CONTROL_INVALID"),
    ({"sweeps": [pb.Sweep(kind=pb.SWEEP_KIND_TOP_UP, trigger=1, target=5, counter_account=ref("bad-eur"))]},
     "CONTROL_INVALID"),
])
def test_bad_controls_are_refused_and_change_nothing(shared_server: Server, fields: dict, reason: str) -> None:
    srv, t = shared_server, "ctl-bad"
    for code, currency in (("bad-a", "USD"), ("bad-treasury", "USD"), ("bad-eur", "EUR")):
        with contextlib.suppress(grpc.RpcError):  # opened by an earlier case
            srv.create_account(t, code, currency=currency, request_id=f"open-{code}")
    assert refused(lambda: set_controls(srv, t, "bad-a", **fields))[1] == reason
    got = controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref("bad-a")), metadata=md(t))
    assert got.controls == pb.AccountControls()


def test_a_team_budget_binds_the_sum_of_its_childrens_spend(shared_server: Server) -> None:
    srv, t = shared_server, "ctl-team"
    for code in ("team", "dev1", "shop"):
        srv.create_account(t, code)
    for code in ("eng1", "eng2"):  # children name their parent when opened
        request = acc_pb.CreateAccountRequest(request_id=srv.request_id(code), code=code, type=1, currency="USD",
                                              parent=ref("team"))
        srv.accounts().CreateAccount(request, metadata=md(t))
        srv.fund(t, code, 5_000)
    set_controls(srv, t, "team", team_velocity=[pb.VelocityLimit(window=DAY, limit=1_000, sliding=True)])

    srv.transfer(t, "eng1", "shop", 600)
    code, reason = refused(lambda: srv.transfer(t, "eng2", "shop", 401))
    assert (code, reason) == (FP, "TEAM_BUDGET_EXCEEDED")
    [voucher] = srv.transfer(t, "eng2", "shop", 400).vouchers
    assert voucher.metadata["controls_checked"] == "team:eng2:team_sliding_day"
    assert refused(lambda: srv.transfer(t, "eng1", "shop", 1))[1] == "TEAM_BUDGET_EXCEEDED"
    srv.fund(t, "dev1", 5_000)  # an account outside the team is not bound
    srv.transfer(t, "dev1", "shop", 3_000)
    got = controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref("team")), metadata=md(t))
    assert [(u.team, u.spent) for u in got.usage] == [(True, 1_000)]
    assert srv.current(t, "shop") == 4_000


def test_a_team_budget_binds_its_whole_subtree(shared_server: Server) -> None:
    srv, t = shared_server, "ctl-org"
    srv.create_account(t, "org")
    srv.create_account(t, "vendor")
    for code, parent in (("org-eng", "org"), ("org-eng-web", "org-eng"), ("org-dev", "org-eng-web")):
        request = acc_pb.CreateAccountRequest(request_id=srv.request_id(code), code=code, type=1, currency="USD",
                                              parent=ref(parent))
        srv.accounts().CreateAccount(request, metadata=md(t))
    srv.fund(t, "org-dev", 5_000)
    srv.fund(t, "org-eng", 5_000)
    set_controls(srv, t, "org", team_velocity=[pb.VelocityLimit(window=DAY, limit=1_000)])
    set_controls(srv, t, "org-eng", team_velocity=[pb.VelocityLimit(window=DAY, limit=700)])

    [voucher] = srv.transfer(t, "org-dev", "vendor", 600).vouchers  # a great-grandchild of org
    assert voucher.metadata["controls_checked"] == "team2:org-dev:team_calendar_day,team3:org-dev:team_calendar_day"
    assert refused(lambda: srv.transfer(t, "org-dev", "vendor", 101))[1] == "TEAM_BUDGET_EXCEEDED"  # org-eng's
    srv.transfer(t, "org-eng", "vendor", 400)  # org's child: org's budget only, now spent
    assert refused(lambda: srv.transfer(t, "org-eng", "vendor", 1))[1] == "TEAM_BUDGET_EXCEEDED"
    assert refused(lambda: srv.transfer(t, "org-dev", "vendor", 1))[1] == "TEAM_BUDGET_EXCEEDED"
    got = controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref("org")), metadata=md(t))
    assert [(u.team, u.spent) for u in got.usage] == [(True, 1_000)]
    assert srv.current(t, "vendor") == 1_000


def test_sweeps_top_up_and_skim_in_the_posting_that_crosses_the_line(shared_server: Server) -> None:
    srv, t = shared_server, "ctl-sweep"
    for code in ("ops", "treasury", "savings", "vendor"):
        srv.create_account(t, code)
    srv.fund(t, "treasury", 10_000)
    srv.fund(t, "ops", 300)
    set_controls(srv, t, "ops", sweeps=[
        pb.Sweep(kind=pb.SWEEP_KIND_TOP_UP, trigger=100, target=500, counter_account=ref("treasury")),
        pb.Sweep(kind=pb.SWEEP_KIND_EXCESS, trigger=2_000, target=1_000, counter_account=ref("savings"))])

    spend, sweep = srv.transfer(t, "ops", "vendor", 250).vouchers  # ops 50: below 100, topped up to 500
    assert (spend.flow_type, sweep.flow_type, sweep.metadata["sweep"]) == ("transfer", "sweep", "top_up")
    assert {(e.account_code, e.amount) for e in sweep.lines} == {("ops", 450), ("treasury", 450)}
    assert (srv.current(t, "ops"), srv.current(t, "treasury")) == (500, 9_550)
    assert len(srv.transfer(t, "ops", "vendor", 300).vouchers) == 1  # 200: above the threshold

    srv.transfer(t, "treasury", "ops", 2_000)  # ops 2,200: above 2,000, down to 1,000
    assert (srv.current(t, "ops"), srv.current(t, "savings")) == (1_000, 1_200)
    # A funding account that runs dry tops up what it can, and never refuses the posting.
    srv.transfer(t, "treasury", "vendor", srv.current(t, "treasury") - 100)
    srv.transfer(t, "ops", "vendor", 950)
    assert (srv.current(t, "ops"), srv.current(t, "treasury")) == (150, 0)


@pytest.mark.postgres
@pytest.mark.parametrize("sliding", [False, True], ids=["calendar", "sliding"])
def test_a_velocity_limit_holds_exactly_under_many_callers(postgres_server: Server, sliding: bool) -> None:
    srv, t, limit = postgres_server, "ctl-race", 20_000
    srv.create_account(t, "payer")
    srv.create_account(t, "payee")
    srv.fund(t, "payer", 1_000_000)
    set_controls(srv, t, "payer", velocity=[pb.VelocityLimit(window=DAY, limit=limit, sliding=sliding)])
    accepted: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        stub = srv.accounting(srv.channel())
        for i in range(12):
            amount = rng.randint(1, 900)
            try:
                stub.Post(transfer_request(f"race-{seed}-{i}", "payer", "payee", amount), metadata=md(t))
            except grpc.RpcError as err:
                with lock:
                    errors.append(error_info(err)[1])
                continue
            with lock:
                accepted.append(amount)

    threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(errors) <= {"VELOCITY_LIMIT_EXCEEDED"}
    assert errors, "16 x 12 spends of up to 900 must pass the limit"
    assert 0 < sum(accepted) <= limit
    assert srv.current(t, "payee") == sum(accepted)
    got = controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref("payer")), metadata=md(t))
    assert got.usage[0].spent == sum(accepted)
    # The counter is exact: what is left of the limit can still be spent, and not one unit more.
    if sum(accepted) < limit:
        srv.transfer(t, "payer", "payee", limit - sum(accepted))
    assert refused(lambda: srv.transfer(t, "payer", "payee", 1))[1] == "VELOCITY_LIMIT_EXCEEDED"
    assert srv.current(t, "payee") == limit


def test_the_cli_sets_shows_and_clears_controls(shared_server: Server, monkeypatch, capsys) -> None:
    srv, t = shared_server, "ctl-cli"
    monkeypatch.delenv("TALLY_KEY_FILE", raising=False)
    monkeypatch.setenv("TALLY_API_KEY", TenantKeys.for_target(srv.target).key_for(t))
    for code in ("wallet", "reserve", "shop"):
        srv.create_account(t, code)
    srv.fund(t, "reserve", 5_000)
    srv.fund(t, "wallet", 350)
    target = ["--target", srv.target]
    assert cli.main(["controls", "set", "wallet", "--per-voucher-max", "300", "--velocity", "day=1000",
                     "--sliding", "hour=700", "--flow", "transfer", "--counterparty", "shop",
                     "--top-up", "100:400:reserve", "--request-id", "cli-set-1", *target]) == 0
    out = capsys.readouterr().out
    assert "per_voucher_max" in out and "calendar day" in out and "sliding hour" in out
    assert refused(lambda: srv.transfer(t, "wallet", "shop", 301))[1] == "SPEND_LIMIT_EXCEEDED"
    assert len(srv.transfer(t, "wallet", "shop", 300).vouchers) == 2  # 50 left: topped up to 400
    assert srv.current(t, "wallet") == 400
    assert cli.main(["controls", "show", "wallet", "--json", *target]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [u["spent"] for u in shown["usage"]] == ["300", "300"]
    assert shown["controls"]["sweeps"][0]["kind"] == "SWEEP_KIND_TOP_UP"
    assert cli.main(["controls", "set", "wallet", "--velocity", "week=5", *target]) == 2  # a bad window
    assert cli.main(["controls", "set", "wallet", "--velocity", "day=0", *target]) == 2  # not an amount
    capsys.readouterr()
    assert cli.main(["controls", "clear", "wallet", *target]) == 0
    assert "no velocity limits" in capsys.readouterr().out
    srv.transfer(t, "wallet", "reserve", 350)


def test_fx_converts_between_a_partys_currencies_exact_to_the_unit(shared_server: Server, monkeypatch,
                                                                    capsys) -> None:
    srv, t = shared_server, "ctl-fx"
    srv.create_account(t, "alice:USD")
    srv.create_account(t, "alice:EUR", currency="EUR")
    srv.fund(t, "alice:USD", 10_000)
    set_controls(srv, t, "alice:USD", per_voucher_max=5_000, allowed_flows=["fx", "transfer"])
    request = post_pb.PostRequest(request_id=srv.request_id("fx"), fx=fx_flow("alice:USD", "alice:EUR", 1_000, 1, 3))
    [voucher] = srv.accounting().Post(request, metadata=md(t)).vouchers
    assert voucher.flow_type == "fx" and voucher.metadata["fx_rate"] == "1/3"
    assert voucher.metadata["policy"] == "limit_check.passed"
    assert {(e.account_code, e.amount, e.currency) for e in voucher.lines} == {
        ("alice:USD", 1_000, "USD"), ("fx_position:USD", 999, "USD"), ("fx_gain_loss:USD", 1, "USD"),
        ("fx_position:EUR", 333, "EUR"), ("alice:EUR", 333, "EUR")}
    assert (srv.current(t, "alice:USD"), srv.current(t, "alice:EUR")) == (9_000, 333)
    assert (srv.current(t, "fx_position:USD"), srv.current(t, "fx_gain_loss:USD")) == (999, 1)

    too_much = post_pb.PostRequest(request_id=srv.request_id("fx"),
                                   fx=fx_flow("alice:USD", "alice:EUR", 5_001, 9_213, 10_000))
    assert refused(lambda: srv.accounting().Post(too_much, metadata=md(t))) == (FP, "SPEND_LIMIT_EXCEEDED")
    wrong = post_pb.PostRequest(request_id=srv.request_id("fx"), fx=fx_flow("alice:EUR", "alice:USD", 10, 1, 1))
    wrong.fx.from_currency, wrong.fx.to_currency = "USD", "EUR"  # the accounts hold the other currencies
    assert refused(lambda: srv.accounting().Post(wrong, metadata=md(t))) == (FP, "CURRENCY_MISMATCH")
    tiny = post_pb.PostRequest(request_id=srv.request_id("fx"), fx=fx_flow("alice:USD", "alice:EUR", 2, 1, 3))
    assert refused(lambda: srv.accounting().Post(tiny, metadata=md(t)))[1] == "FX_AMOUNT_TOO_SMALL"

    monkeypatch.delenv("TALLY_KEY_FILE", raising=False)
    monkeypatch.setenv("TALLY_API_KEY", TenantKeys.for_target(srv.target).key_for(t))
    assert cli.main(["fx", "alice:EUR", "alice:USD", "333", "--from-currency", "EUR", "--to-currency", "USD",
                     "--rate", "3/1", "--request-id", "cli-fx-1", "--target", srv.target]) == 0
    assert "fx_position:EUR" in capsys.readouterr().out
    assert (srv.current(t, "alice:USD"), srv.current(t, "alice:EUR")) == (9_999, 0)
    trial = book_grpc.BookkeepingServiceStub(srv._default).GetTrialBalance(book_pb.GetTrialBalanceRequest(),
                                                                          metadata=md(t))
    assert {total.currency: total.difference for total in trial.totals} == {"USD": 0, "EUR": 0}


def fx_flow(source: str, destination: str, amount: int, numerator: int, denominator: int) -> flows_pb2.FxFlow:
    flow = flows_pb2.FxFlow(to=ref(destination), amount=amount, from_currency="USD", to_currency="EUR",
                            rate_numerator=numerator, rate_denominator=denominator)
    if source.endswith("EUR"):
        flow.from_currency, flow.to_currency = "EUR", "USD"
    getattr(flow, "from").CopyFrom(ref(source))
    return flow


def test_the_day_close_runs_the_sweeps_no_posting_triggered(shared_server: Server) -> None:
    srv, t = shared_server, "ctl-close"
    for code in ("ops", "treasury", "savings", "wallet"):
        srv.create_account(t, code)
    date = srv.fund(t, "ops", 3_000).accounting_date
    srv.fund(t, "treasury", 30)
    srv.fund(t, "wallet", 50)
    set_controls(srv, t, "ops", sweeps=[
        pb.Sweep(kind=pb.SWEEP_KIND_EXCESS, trigger=1_000, target=500, counter_account=ref("savings"))])
    set_controls(srv, t, "wallet", sweeps=[
        pb.Sweep(kind=pb.SWEEP_KIND_TOP_UP, trigger=100, target=400, counter_account=ref("treasury"))])
    srv.transfer(t, "wallet", "savings", 10)  # wallet 40: topped up with the 30 treasury has, still below 100
    assert (srv.current(t, "wallet"), srv.current(t, "treasury")) == (70, 0)
    srv.fund(t, "treasury", 1_000)  # moves treasury, not wallet: no sweep yet

    days = day_grpc.DayServiceStub(srv._default)
    close = day_pb.CloseAccountingDayRequest(accounting_date=date, early=True, request_id="close-1")
    days.CloseAccountingDay(close, metadata=md(t))
    assert (srv.current(t, "ops"), srv.current(t, "savings")) == (500, 2_500 + 10)
    assert (srv.current(t, "wallet"), srv.current(t, "treasury")) == (400, 670)
    close.request_id = "close-2"
    days.CloseAccountingDay(close, metadata=md(t))  # closing again replays the sweeps, posts nothing twice
    assert (srv.current(t, "ops"), srv.current(t, "wallet")) == (500, 400)
    sweeps = [v for v in srv.all_vouchers(t) if v.flow_type == "sweep"]
    ids = {a.code: a.id for a in srv.all_accounts(t)}
    assert sorted(v.request_id for v in sweeps if v.request_id.startswith("sweep:")) == sorted(
        f"sweep:{date}:{ids[code]}:{kind}" for code, kind in (("ops", "excess"), ("wallet", "top_up")))
