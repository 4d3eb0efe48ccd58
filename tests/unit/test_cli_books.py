"""`tally rules check` (offline, through tally.cli.main), and the text of `rules show` and `trial-balance`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from tally import cli
from tally.cli import books as cli_books
from tally.cli import common
from tally.v1 import bookkeeping_service_pb2 as book_pb

DEFAULT_RULES = resources.files("tally.rules").joinpath("default.toml")


def test_check_default_rule_set(capsys):
    assert cli.main(["rules", "check", str(DEFAULT_RULES)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{DEFAULT_RULES}: valid, version ") and out.rstrip().endswith(" rules")


def test_check_broken_file_names_locations(tmp_path: Path, capsys):
    broken = tmp_path / "broken.toml"
    broken.write_text(DEFAULT_RULES.read_text().replace('"bps(amount, platform_fee_bps)"', '"bps(amount, nope)"'))
    assert cli.main(["rules", "check", str(broken)]) == 1
    captured = capsys.readouterr()
    assert f"{broken}: rules[1] (id=usage.default).vouchers[0].lines[1].amount: unknown name 'nope'" in captured.out
    assert "invalid, 1 problem(s)" in captured.err


@pytest.mark.parametrize("text", ["version = ", "", 'version = "1"\n[[rules]]\nid = "x"\n'])
def test_check_json_for_invalid_files(tmp_path: Path, capsys, text):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    assert cli.main(["rules", "check", str(path), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False and result["problems"] and all(p.startswith(str(path)) for p in result["problems"])


def test_check_missing_file(tmp_path: Path, capsys):
    assert cli.main(["rules", "check", str(tmp_path / "absent.toml")]) == 1
    assert "cannot be read" in capsys.readouterr().out


def test_rules_table_one_row_per_line():
    rules = [
        book_pb.Rule(id="usage.default", flow="usage", mode="vouchers", vouchers=[book_pb.RuleVoucher(
            name="consumption", lines=[
                book_pb.RuleLine(side="debit", account="consumer:{consumer}:{currency}", amount="amount"),
                book_pb.RuleLine(side="credit", account="affiliate:{affiliate}:{currency}",
                                 amount="bps(amount, affiliate_bps)",
                                 when="affiliate"),
                book_pb.RuleLine(side="credit", account="merchant:{party}:{currency}/settled", amount="remainder",
                                 split="shares")])]),
        book_pb.Rule(id="refund.proportional", flow="refund", mode="proportional_reversal"),
        book_pb.Rule(id="acq.none", flow="acquisition", when={"coupon_issuer": ""}, mode="vouchers",
                     vouchers=[book_pb.RuleVoucher(name="principal", lines=[
                         book_pb.RuleLine(side="debit", account="a", amount="amount")])]),
    ]
    lines = cli_books.rules_table(rules).splitlines()
    assert lines[0].split() == ["rule", "flow", "when", "mode", "voucher", "side", "account", "amount", "if", "split"]
    assert lines[2].split() == ["usage.default", "usage", "consumption", "debit", "consumer:{consumer}:{currency}",
                                "amount"]
    assert lines[3].split() == ["credit", "affiliate:{affiliate}:{currency}", "bps(amount,", "affiliate_bps)",
                                "affiliate"]
    assert lines[4].split() == ["credit", "merchant:{party}:{currency}/settled", "remainder", "shares"]
    assert lines[5].split() == ["refund.proportional", "refund", "proportional_reversal"]
    assert lines[6].split() == ["acq.none", "acquisition", 'coupon_issuer=""', "principal", "debit", "a", "amount"]


def test_rule_set_text_lists_guards():
    response = book_pb.GetRuleSetResponse(version="v1", source="default", flow_types=["payout"], rules=[
        book_pb.Rule(id="payout.default", flow="payout", mode="vouchers", requires=["balance('x') >= 0"])])
    text = cli_books.rule_set_text(response)
    assert "version  v1" in text and "  payout.default: balance('x') >= 0" in text


def test_trial_balance_text():
    balanced = book_pb.GetTrialBalanceResponse(balanced=True, totals=[book_pb.TrialBalanceTotal(
        currency="USD", debit_total=1500000, credit_total=1500000, difference=0, account_count=4)])
    lines = cli_books.trial_balance_text(balanced, 6).splitlines()
    assert lines[0].split() == ["currency", "debit_total", "debit_total_dec", "credit_total", "credit_total_dec",
                                "difference", "difference_dec", "accounts"]
    assert lines[2].split() == ["USD", "1500000", "1.500000", "1500000", "1.500000", "0", "0.000000", "4"]
    assert lines[-1] == "BALANCED"
    off = book_pb.GetTrialBalanceResponse(balanced=False, totals=[
        book_pb.TrialBalanceTotal(currency="EUR", debit_total=5, credit_total=5, account_count=2),
        book_pb.TrialBalanceTotal(currency="USD", debit_total=5, credit_total=4, difference=1, account_count=2)])
    assert cli_books.trial_balance_text(off, None).splitlines()[-1] == "NOT BALANCED: USD"
    assert cli_books.trial_balance_text(book_pb.GetTrialBalanceResponse(balanced=True), None) == \
        "no accounts\n\nBALANCED"


def test_trial_balance_and_show_take_client_options():
    args = cli.build_parser().parse_args(["trial-balance", "--check", "--scale", "6", "--target", "h:1"])
    assert args.func is cli_books.cmd_trial_balance and args.check and args.scale == 6
    assert cli.build_parser().parse_args(["rules", "show", "--json"]).func is cli_books.cmd_rules_show


# ---------------------------------------------------------------------------------------------- verify


def test_chain_text_intact_and_broken():
    intact = book_pb.VerifyChainResponse(intact=True, vouchers_checked=3, head_hash="ab" * 32)
    assert cli_books.chain_text(intact).splitlines()[0] == f"intact: 3 vouchers checked, head hash {'ab' * 32}"
    assert cli_books.chain_text(book_pb.VerifyChainResponse(intact=True, vouchers_checked=1)).splitlines()[0] == \
        "intact: 1 voucher checked"
    broken = cli_books.chain_text(book_pb.VerifyChainResponse(
        intact=False, vouchers_checked=7, first_broken_voucher_id="V5", first_broken_sequence=5,
        problem="content hash does not match", head_hash="cd" * 32))
    lines = broken.splitlines()
    assert lines[0] == "BROKEN: 7 vouchers checked; the first voucher that does not check out:"
    assert lines[1].split() == ["voucher", "V5"] and lines[2].split() == ["sequence", "5"]
    assert lines[3].split(None, 1) == ["problem", "content hash does not match"]


def test_chain_text_names_each_finding_with_expected_and_found():
    response = book_pb.VerifyChainResponse(
        intact=False, vouchers_checked=4, full=True, through_sequence=4, vouchers_read=4,
        findings=[book_pb.AuditFinding(kind=book_pb.AUDIT_FINDING_KIND_BALANCE_CURRENT, account_id="A1",
                                       expected="100", found="777000100", message="current is 777000100")],
        marked_inconsistent_account_ids=["A1"])
    lines = cli_books.chain_text(response).splitlines()
    assert lines[0].startswith("INCONSISTENT: 4 vouchers checked")
    assert lines[1] == "  BALANCE_CURRENT account A1: expected 100, found 777000100 (current is 777000100)"
    assert lines[2].endswith(": A1")
    assert lines[3].startswith("audit: full, vouchers 1..4: 4 vouchers")


class _Audit:
    """A BookkeepingServiceStub whose AuditLedger streams two progress messages and the result."""

    requests: list = []

    def __init__(self, channel, response=None):
        self.response = response

    def AuditLedger(self, request, metadata=(), timeout=None):
        _Audit.requests.append((request, timeout))
        yield book_pb.AuditLedgerResponse(progress=book_pb.AuditProgress(vouchers_read=1, through_sequence=1,
                                                                         last_sequence=2))
        yield book_pb.AuditLedgerResponse(result=_Audit.result)


class _Channel:
    def close(self):
        pass


@pytest.mark.parametrize(("intact", "status"), [(True, 0), (False, 1)])
def test_verify_exits_1_when_broken(monkeypatch, capsys, intact, status):
    _Audit.result = book_pb.VerifyChainResponse(intact=intact, vouchers_checked=2,
                                                first_broken_voucher_id="" if intact else "V2",
                                                first_broken_sequence=0 if intact else 2,
                                                problem="" if intact else "link to the previous voucher")
    _Audit.requests = []
    monkeypatch.setattr(common, "connect", lambda args: _Channel())
    monkeypatch.setattr(cli_books.book_grpc, "BookkeepingServiceStub", _Audit)
    assert cli.main(["verify", "--api-key", "tly_x"]) == status
    captured = capsys.readouterr()
    assert captured.out.startswith("intact: 2 vouchers checked" if intact else "BROKEN: 2 vouchers checked")
    assert "verified 1 vouchers, through 1 of 2" in captured.err  # progress goes to stderr
    assert [(r.full, t) for r, t in _Audit.requests] == [(False, None)]
    assert cli.main(["verify", "--api-key", "tly_x", "--json", "--full", "--deadline", "5"]) == status
    assert json.loads(capsys.readouterr().out)["intact"] is intact
    assert (_Audit.requests[-1][0].full, _Audit.requests[-1][1]) == (True, 5.0)
