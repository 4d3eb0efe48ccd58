"""Sweeps from the rule set, over the real gRPC wire on SQLite and PostgreSQL: an account template's
`top_up` and `excess` name the other account by a code pattern filled from the account's own code, run in
the posting that crosses the line under the same money-safety checks as the API's sweeps, and give way to
controls set through the API; `tally rules check` locates a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tally import cli
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import day_service_pb2 as day_pb
from tally.v1 import day_service_pb2_grpc as day_grpc
from tests.e2e.conftest import BACKENDS, Server, md, module_server, ref
from tests.e2e.test_e2e_controls import refused, set_controls
from tests.e2e.test_e2e_sweep_guards import pay_in, secure
from tests.unit.test_rules_sweeps import RULES


@pytest.fixture(scope="module", params=BACKENDS)
def rules_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("rules") / "sweeps.toml"
    path.write_text(RULES)
    with module_server(request, tmp_path_factory, rules_file=str(path)) as srv:
        yield srv


def test_a_templates_sweeps_run_for_every_account_it_opens(rules_server: Server) -> None:
    srv, t = rules_server, "rule-sweeps"
    for code, kind in (("wallet:c1", "deposit"), ("reserve:c1", "security_deposit"), ("savings:c1", "deposit"),
                       ("wallet:c2", "deposit"), ("vendor", "deposit"), ("line:c1", "credit")):
        srv.create_account(t, code, kind, credit_limit=10**6 if kind == "credit" else 0)
    srv.fund(t, "reserve:c1", 1_000)
    srv.fund(t, "wallet:c1", 300)
    srv.fund(t, "wallet:c2", 300)

    spend, top_up = srv.transfer(t, "wallet:c1", "vendor", 250).vouchers  # 50: topped up to 500 from reserve:c1
    assert {(line.account_code, line.amount) for line in top_up.lines} == {("wallet:c1", 450), ("reserve:c1", 450)}
    assert (spend.flow_type, top_up.metadata["sweep"]) == ("transfer", "top_up")
    # The reserve secures credit now: it must keep 400 and gives only the 150 above it.
    secure(srv, t, "line:c1", "reserve:c1", 5_000)
    srv.transfer(t, "line:c1", "vendor", 200)
    srv.transfer(t, "wallet:c1", "vendor", 450)
    assert (srv.current(t, "wallet:c1"), srv.current(t, "reserve:c1")) == (200, 400)
    assert len(pay_in(srv, t, "wallet:c1", 2_000).vouchers) == 2  # 2,200: down to 1,000 into savings:c1
    assert (srv.current(t, "wallet:c1"), srv.current(t, "savings:c1")) == (1_000, 1_200)
    # wallet:c2's reserve and savings were never opened: its sweeps cannot run, its postings go through.
    assert len(srv.transfer(t, "wallet:c2", "vendor", 250).vouchers) == 1
    # Controls set through the API replace the template's, sweeps included.
    set_controls(srv, t, "wallet:c1", per_voucher_max=5_000)
    assert len(pay_in(srv, t, "wallet:c1", 3_000).vouchers) == 1
    assert (srv.current(t, "wallet:c1"), srv.current(t, "savings:c1")) == (4_000, 1_200)


def test_the_day_close_runs_a_templates_sweeps(rules_server: Server) -> None:
    srv, t = rules_server, "rule-close"
    for code, kind in (("wallet:d1", "deposit"), ("reserve:d1", "security_deposit"), ("wallet:d2", "deposit"),
                       ("reserve:d2", "security_deposit"), ("vendor", "deposit")):
        srv.create_account(t, code, kind)
    for wallet in ("wallet:d1", "wallet:d2"):
        srv.fund(t, wallet, 300)
        assert len(srv.transfer(t, wallet, "vendor", 250).vouchers) == 1  # 50: its reserve has nothing yet
    srv.fund(t, "reserve:d1", 1_000)  # moves the reserve, not the wallet: no sweep yet
    date = srv.fund(t, "reserve:d2", 1_000).accounting_date
    set_controls(srv, t, "wallet:d2", per_voucher_max=5_000)  # the API's controls replace the template's

    close = day_pb.CloseAccountingDayRequest(accounting_date=date, early=True, request_id="rule-close-1")
    day_grpc.DayServiceStub(srv._default).CloseAccountingDay(close, metadata=md(t))
    assert (srv.current(t, "wallet:d1"), srv.current(t, "reserve:d1")) == (500, 550)
    assert (srv.current(t, "wallet:d2"), srv.current(t, "reserve:d2")) == (50, 1_000)


def test_a_templates_team_budget_binds_its_whole_subtree(rules_server: Server) -> None:
    srv, t = rules_server, "rule-team"
    srv.create_account(t, "team:x")
    srv.create_account(t, "vendor")
    for code, parent in (("x-lead", "team:x"), ("x-dev", "x-lead")):
        request = acc_pb.CreateAccountRequest(request_id=srv.request_id(code), code=code, type=1, currency="USD",
                                              parent=ref(parent))
        srv.accounts().CreateAccount(request, metadata=md(t))
    srv.fund(t, "x-dev", 5_000)
    [voucher] = srv.transfer(t, "x-dev", "vendor", 600).vouchers  # the budget of team:x's template
    assert voucher.metadata["controls_checked"] == "team2:x-dev:team_calendar_day"
    assert refused(lambda: srv.transfer(t, "x-dev", "vendor", 401))[1] == "TEAM_BUDGET_EXCEEDED"
    srv.transfer(t, "x-dev", "vendor", 400)


def test_rules_check_locates_a_bad_sweep(tmp_path: Path, capsys) -> None:
    bad = RULES.replace('from = "reserve:{consumer}"', 'from = "reserve:{owner}"').replace(
        "excess = { ceiling = 2000, target = 1000,", "excess = { ceiling = 2000, target = 3000,")
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    assert cli.main(["rules", "check", str(path)]) != 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert 'accounts."wallet:{consumer}".controls.top_up.from: placeholder {owner}' in text
    path.write_text(RULES.replace("threshold = 100, target = 500", "threshold = 600, target = 500"))
    assert cli.main(["rules", "check", str(path)]) != 0
    out = capsys.readouterr()
    assert "top-up's target is at or above its threshold" in out.out + out.err
    path.write_text(RULES)
    assert cli.main(["rules", "check", str(path)]) == 0
