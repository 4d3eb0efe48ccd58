"""Where an account's controls come from, over the real gRPC wire on SQLite and PostgreSQL: GetAccountControls
and `tally controls show` answer the controls the posting path checks, the rule set's account template's
until controls are set through the API, the API's while they are, the template's again once cleared."""

from __future__ import annotations

import json

import pytest

from tally import cli
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import control_service_pb2 as pb
from tests.e2e.conftest import BACKENDS, Server, TenantKeys, md, module_server, ref
from tests.e2e.test_e2e_controls import controls, refused, set_controls

RULES = '''
version = "controls-source.1"

[flows.funding]
parties = ["consumer", "processor"]
values = ["amount"]

[accounts."card:{consumer}"]
type = "deposit"
[accounts."card:{consumer}".controls]
per_voucher_max = 300
velocity = [{ window = "day", limit = 1000 }]
top_up = { threshold = 100, target = 500, from = "reserve:{consumer}" }

[accounts."reserve:{consumer}"]
type = "security_deposit"

[accounts."team:{team}"]
type = "deposit"
[accounts."team:{team}".controls]
team_velocity = [{ window = "day", limit = 1000 }]

[accounts."processor_clearing:{processor}"]
type = "internal"
normal_side = "debit"

[[rules]]
id = "funding.default"
flow = "funding"
[[rules.vouchers]]
name = "funding"
[[rules.vouchers.lines]]
side = "debit"
account = "processor_clearing:{processor}"
amount = "amount"
[[rules.vouchers.lines]]
side = "credit"
account = "card:{consumer}"
amount = "amount"
'''
PATTERN = "card:{consumer}"


@pytest.fixture(scope="module", params=BACKENDS)
def rules_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("rules") / "controls_source.toml"
    path.write_text(RULES)
    with module_server(request, tmp_path_factory, rules_file=str(path)) as srv:
        yield srv


def shown(srv: Server, tenant: str, code: str) -> pb.GetAccountControlsResponse:
    return controls(srv).GetAccountControls(pb.GetAccountControlsRequest(account=ref(code)), metadata=md(tenant))


def usage(got: pb.GetAccountControlsResponse) -> list[tuple[int, bool, int]]:
    return [(u.limit.limit, u.team, u.spent) for u in got.usage]


def test_get_answers_the_controls_in_force_and_where_they_come_from(rules_server: Server) -> None:
    srv, t = rules_server, "ctl-source"
    for code, kind in (("card:a", "deposit"), ("reserve:a", "security_deposit"), ("shop", "deposit")):
        srv.create_account(t, code, kind)
    srv.fund(t, "card:a", 2_000)
    srv.transfer(t, "card:a", "shop", 200)

    got = shown(srv, t, "card:a")
    assert (got.source, got.template_pattern) == (pb.CONTROLS_SOURCE_RULE_SET, PATTERN)
    assert got.controls.per_voucher_max == 300
    assert usage(got) == [(1_000, False, 200)]
    [sweep] = got.controls.sweeps
    assert (sweep.kind, sweep.trigger, sweep.target, sweep.counter_account.code) == (
        pb.SWEEP_KIND_TOP_UP, 100, 500, "reserve:a")
    assert refused(lambda: srv.transfer(t, "card:a", "shop", 301))[1] == "SPEND_LIMIT_EXCEEDED"  # what is shown binds
    plain = shown(srv, t, "shop")
    assert (plain.source, plain.template_pattern, usage(plain)) == (pb.CONTROLS_SOURCE_UNSPECIFIED, "", [])

    set_controls(srv, t, "card:a", per_voucher_max=5_000)  # replaces the template's, velocity and sweep included
    got = shown(srv, t, "card:a")
    assert (got.source, got.template_pattern) == (pb.CONTROLS_SOURCE_API, "")
    assert (got.controls.per_voucher_max, usage(got), list(got.controls.sweeps)) == (5_000, [], [])
    srv.transfer(t, "card:a", "shop", 400)

    set_controls(srv, t, "card:a")  # cleared: the template's bind again
    got = shown(srv, t, "card:a")
    assert (got.source, got.template_pattern, got.controls.per_voucher_max) == (
        pb.CONTROLS_SOURCE_RULE_SET, PATTERN, 300)
    assert usage(got) == [(1_000, False, 200)]  # the 400 was spent under the API's controls, no velocity
    assert refused(lambda: srv.transfer(t, "card:a", "shop", 301))[1] == "SPEND_LIMIT_EXCEEDED"


def test_a_templates_team_budget_shows_its_childrens_spend(rules_server: Server) -> None:
    srv, t = rules_server, "ctl-source-team"
    srv.create_account(t, "team:y")
    srv.create_account(t, "shop")
    request = acc_pb.CreateAccountRequest(request_id=srv.request_id("y-dev"), code="y-dev", type=1, currency="USD",
                                          parent=ref("team:y"))
    srv.accounts().CreateAccount(request, metadata=md(t))
    srv.fund(t, "y-dev", 5_000)
    srv.transfer(t, "y-dev", "shop", 600)
    got = shown(srv, t, "team:y")
    assert (got.source, got.template_pattern) == (pb.CONTROLS_SOURCE_RULE_SET, "team:{team}")
    assert usage(got) == [(1_000, True, 600)]


def source_line(out: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith("source ")]
    return " ".join(line.split(None, 1))


def test_the_cli_shows_the_source(rules_server: Server, monkeypatch, capsys) -> None:
    srv, t = rules_server, "ctl-source-cli"
    monkeypatch.delenv("TALLY_KEY_FILE", raising=False)
    monkeypatch.setenv("TALLY_API_KEY", TenantKeys.for_target(srv.target).key_for(t))
    srv.create_account(t, "card:b")
    target = ["--target", srv.target]

    assert cli.main(["controls", "show", "card:b", *target]) == 0
    out = capsys.readouterr().out
    assert source_line(out) == f"source rule set (template {PATTERN})"
    assert "300" in out and "reserve:b" in out
    assert cli.main(["controls", "show", "card:b", "--json", *target]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["source"], got["template_pattern"]) == ("CONTROLS_SOURCE_RULE_SET", PATTERN)

    assert cli.main(["controls", "set", "card:b", "--per-voucher-max", "70", *target]) == 0
    capsys.readouterr()
    assert cli.main(["controls", "show", "card:b", *target]) == 0
    out = capsys.readouterr().out
    assert source_line(out) == "source api"
    assert "70" in out
