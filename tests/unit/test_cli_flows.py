"""`tally post FLOW`: the share, coupon and rate parsers, and the flow messages built from parsed arguments.

No server: the parser is tally.cli.build_parser and the flows come from tally.cli.flows.flow_message.
"""

from __future__ import annotations

import pytest

from tally import cli
from tally.cli import flows as cli_flows
from tally.cli.flows import flow_message, parse_bps, parse_coupon, parse_share, parse_timestamp, posted_lines_table
from tally.v1 import flows_pb2, types_pb2

TARGET = ["--target", "127.0.0.1:1", "--api-key", "tly_0123456789abcdef_k"]


def parse(*argv: str):
    return cli.build_parser().parse_args([*argv, *TARGET])


def refused(capsys, *argv: str) -> str:
    """Runs `tally ARGV` expecting an argument error (exit 2, before any connection); returns stderr."""
    assert cli.main([*argv, *TARGET]) == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- parsers


def test_share_is_party_and_integer_basis_points():
    share = parse_share("m1:7000")
    assert (share.party, share.share_bps) == ("m1", 7000)
    assert type(share.share_bps) is int
    assert parse_share("merchant:eu:2500").party == "merchant:eu"  # the party may contain colons
    assert parse_share("x:10000").share_bps == 10000


@pytest.mark.parametrize("text", ["m1", "m1:", ":7000", "m1:70.5", "m1:7e3", "m1:+7000", "m1: 7000", "m1:0",
                                  "m1:-1", "m1:10001", "m1:70%", "m1:0x10", "m1:7_000", ""])
def test_malformed_shares_are_refused(text):
    with pytest.raises(ValueError):
        parse_share(text)


def test_coupon_issuers_amounts_and_merchant_share():
    coupon = parse_coupon("platform:500000")
    assert (coupon.issuer, coupon.amount, coupon.merchant_share_bps) == (flows_pb2.COUPON_ISSUER_PLATFORM, 500000, 0)
    assert parse_coupon("MERCHANT:1").issuer == flows_pb2.COUPON_ISSUER_MERCHANT
    assert parse_coupon("purchased:2").issuer == flows_pb2.COUPON_ISSUER_PURCHASED
    shared = parse_coupon("shared:500000:4000")
    assert (shared.issuer, shared.amount, shared.merchant_share_bps) == (flows_pb2.COUPON_ISSUER_SHARED, 500000, 4000)
    assert parse_coupon("shared:500000").merchant_share_bps == 0


@pytest.mark.parametrize("text", ["platform", "platform:", "bank:100", "unspecified:100", "platform:1.5",
                                  "platform:0", "platform:-5", "platform:1e6", "platform:100:10",
                                  "shared:100:10001", "shared:100:40.5", "shared:100:", "shared:100:1:2", ":100"])
def test_malformed_coupons_are_refused(text):
    with pytest.raises(ValueError):
        parse_coupon(text)


def test_basis_points_bounds():
    assert parse_bps("0") == 0 and parse_bps("10000") == 10000
    for text in ("10001", "-1", "2.5", "1e2", ""):
        with pytest.raises(ValueError):
            parse_bps(text)
    with pytest.raises(ValueError):
        parse_bps("0", minimum=1)


def test_timestamp_is_rfc3339():
    assert parse_timestamp("2026-05-01T12:00:00Z").seconds == 1777636800
    for text in ("2026-05-01", "yesterday", "1777636800"):
        with pytest.raises(ValueError):
            parse_timestamp(text)


# ---------------------------------------------------------------------------------------------- flows


def test_usage_with_affiliate_shares_hold_and_meter():
    args = parse("post", "usage", "--consumer", "c1", "--merchant", "m1", "--amount", "1234567", "--currency", "usd",
                 "--affiliate", "a1", "--share", "m1:7000", "--share", "m2:3000", "--hold", "H1", "--meter", "calls")
    flow = flow_message(args)
    assert isinstance(flow, flows_pb2.UsageFlow)
    assert (flow.consumer, flow.merchant, flow.amount, flow.currency) == ("c1", "m1", 1234567, "USD")
    assert (flow.affiliate, flow.hold_id, flow.meter) == ("a1", "H1", "calls")
    assert [(s.party, s.share_bps) for s in flow.shares] == [("m1", 7000), ("m2", 3000)]
    assert args.func is cli_flows.cmd_post and type(args.amount) is int


def test_funding_payout_guarantee_and_refund():
    funding = flow_message(parse("post", "funding", "--consumer", "c1", "--processor", "ach", "--amount", "5",
                                 "--currency", "EUR", "--external-ref", "x-1"))
    assert (funding.consumer, funding.processor, funding.amount, funding.currency, funding.external_ref) == \
        ("c1", "ach", 5, "EUR", "x-1")
    payout = flow_message(parse("post", "payout", "--merchant", "m1", "--amount", "1500555", "--currency", "USD"))
    assert isinstance(payout, flows_pb2.PayoutFlow) and payout.amount == 1500555
    guarantee = flow_message(parse("post", "guarantee", "--merchant", "m1", "--amount", "9", "--currency", "USD"))
    assert isinstance(guarantee, flows_pb2.GuaranteeFlow) and guarantee.merchant == "m1"
    refund = flow_message(parse("post", "refund", "--original", "q1", "--amount", "2000000", "--currency", "USD",
                                "--reason", "returned"))
    assert (refund.original_request_id, refund.amount, refund.reason) == ("q1", 2000000, "returned")


def test_acquisition_with_and_without_coupon():
    plain = flow_message(parse("post", "acquisition", "--merchant", "m1", "--channel", "visa", "--amount", "5000000",
                               "--currency", "USD", "--order-ref", "o-1"))
    assert not plain.HasField("coupon") and plain.order_ref == "o-1"
    with_coupon = flow_message(parse("post", "acquisition", "--merchant", "m1", "--channel", "visa", "--amount", "50",
                                     "--currency", "USD", "--coupon", "shared:10:4000", "--coupon-id", "C1"))
    assert with_coupon.coupon == flows_pb2.Coupon(issuer=flows_pb2.COUPON_ISSUER_SHARED, amount=10,
                                                  merchant_share_bps=4000, coupon_id="C1")
    with pytest.raises(ValueError, match="--coupon-id needs --coupon"):
        flow_message(parse("post", "acquisition", "--merchant", "m1", "--channel", "visa", "--amount", "50",
                           "--currency", "USD", "--coupon-id", "C1"))


def test_settlement_kinds_and_actual_amount():
    merchant = flow_message(parse("post", "settlement", "--kind", "merchant", "--merchant", "m1", "--amount", "10",
                                  "--currency", "USD"))
    assert merchant.kind == flows_pb2.SETTLEMENT_KIND_MERCHANT and not merchant.HasField("actual_amount")
    channel = flow_message(parse("post", "settlement", "--kind", "channel", "--channel", "visa", "--amount", "10",
                                 "--actual", "0", "--currency", "USD", "--batch-ref", "b1"))
    assert channel.kind == flows_pb2.SETTLEMENT_KIND_CHANNEL
    assert channel.HasField("actual_amount") and channel.actual_amount == 0 and channel.batch_ref == "b1"
    bank = flow_message(parse("post", "settlement", "--kind", "bank", "--channel", "visa", "--amount", "10",
                              "--currency", "USD"))
    assert bank.kind == flows_pb2.SETTLEMENT_KIND_BANK
    for argv, message in ((["--kind", "merchant", "--channel", "visa"], "needs --merchant"),
                          (["--kind", "bank", "--merchant", "m1"], "needs --channel"),
                          (["--kind", "merchant", "--merchant", "m1", "--actual", "5"], "--actual is for")):
        with pytest.raises(ValueError, match=message):
            flow_message(parse("post", "settlement", *argv, "--amount", "10", "--currency", "USD"))


def test_settlement_combination_refused_before_connecting(capsys):
    assert cli.main(["post", "settlement", "--kind", "channel", "--amount", "10", "--currency", "USD", *TARGET]) == 2
    captured = capsys.readouterr()
    assert "a channel settlement needs --channel" in captured.err
    assert "request-id" not in captured.err  # nothing was about to be sent


@pytest.mark.parametrize("argv", [
    ["post", "usage", "--consumer", "c", "--merchant", "m", "--amount", "12.5", "--currency", "USD"],
    ["post", "usage", "--consumer", "c", "--merchant", "m", "--amount", "1e6", "--currency", "USD"],
    ["post", "usage", "--consumer", "c", "--merchant", "m", "--amount", "0", "--currency", "USD"],
    ["post", "usage", "--consumer", "c", "--merchant", "m", "--amount", "nan", "--currency", "USD"],
    ["post", "usage", "--consumer", "c", "--merchant", "m", "--amount", "9223372036854775808", "--currency", "USD"],
    ["post", "usage", "--consumer", "c", "--merchant", "m", "--amount", "5", "--currency", "USD", "--share", "m:1.5"],
    ["post", "usage", "--consumer", "c", "--amount", "5", "--currency", "USD"],
    ["post", "acquisition", "--merchant", "m", "--channel", "v", "--amount", "5", "--currency", "USD",
     "--coupon", "platform:0.5"],
    ["post", "acquisition", "--merchant", "m", "--channel", "v", "--amount", "5", "--currency", "USD",
     "--coupon", "gift:5"],
    ["post", "settlement", "--kind", "weekly", "--merchant", "m", "--amount", "5", "--currency", "USD"],
    ["post", "settlement", "--kind", "channel", "--channel", "v", "--amount", "5", "--actual", "4.99",
     "--currency", "USD"],
    ["post", "refund", "--amount", "5", "--currency", "USD"],
    ["post", "payout", "--merchant", "m", "--amount", "5"],
    ["post", "funding", "--consumer", "c", "--processor", "card", "--amount", "5", "--currency", "USD",
     "--effective-time", "today"],
    ["post", "transfer", "--amount", "5"],
])
def test_malformed_post_arguments_exit_2(capsys, argv):
    assert "error" in refused(capsys, *argv)


# ---------------------------------------------------------------------------------------------- output


def test_posted_lines_table_has_sequence_flow_rule_account_side_amount():
    voucher = types_pb2.Voucher(sequence=7, flow_type="usage", rule_id="usage.default", lines=[
        types_pb2.VoucherLine(line_no=1, account_code="consumer:c1:USD", side=types_pb2.SIDE_DEBIT, amount=1234567,
                              currency="USD"),
        types_pb2.VoucherLine(line_no=2, account_code="merchant:m1:USD/settled", side=types_pb2.SIDE_CREDIT,
                              amount=1234567, currency="USD")])
    lines = posted_lines_table([voucher], None).splitlines()
    assert lines[0].split() == ["seq", "flow", "rule", "line", "account", "side", "amount", "currency"]
    assert lines[2].split() == ["7", "usage", "usage.default", "1", "consumer:c1:USD", "debit", "1234567", "USD"]
    scaled = posted_lines_table([voucher], 6).splitlines()
    assert scaled[3].split() == ["7", "usage", "usage.default", "2", "merchant:m1:USD/settled", "credit", "1234567",
                                 "1.234567", "USD"]
