"""`tally post FLOW`: post one typed business flow (funding, usage, acquisition, refund, settlement, payout,
guarantee) and print the vouchers the server's rule set built for it, one row per line.

    tally post funding --consumer c1 --processor card --amount 10000000 --currency USD
    tally post usage --consumer c1 --merchant m1 --amount 1234567 --currency USD [--affiliate a1]
                     [--share party:bps ...] [--hold HOLD_ID] [--meter TEXT]
    tally post acquisition --merchant m1 --channel visa --amount N --currency USD
                     [--coupon platform|merchant|shared|purchased:AMOUNT[:MERCHANT_SHARE_BPS]]
    tally post refund --original REQUEST_ID --amount N --currency USD [--reason TEXT]
    tally post settlement --kind merchant|channel|bank|processor [--merchant M] [--channel C] [--processor P]
                     --amount N --currency USD [--actual N]
    tally post payout --merchant m1 --amount N --currency USD
    tally post guarantee --merchant m1 --amount N --currency USD [--mode settlement_order|account|account_collection]

Amounts are integer counts of atomic units and rates integer basis points, parsed strictly (no float).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from tally.cli import common
from tally.cli import format as fmt
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2, types_pb2

BPS_WHOLE = 10_000
COUPON_ISSUERS = fmt.enum_labels(flows_pb2.CouponIssuer)  # platform, merchant, shared, purchased
SETTLEMENT_KINDS = fmt.enum_labels(flows_pb2.SettlementKind)  # merchant, channel, bank
FLOWS = ("funding", "usage", "acquisition", "refund", "settlement", "payout", "guarantee")



# ---------------------------------------------------------------------------------------------- parsing


def parse_bps(text: str, *, minimum: int = 0, what: str = "basis points") -> int:
    """An integer count of basis points from `minimum` to 10000 (100%); no decimal point, no percent sign."""
    value = fmt.parse_amount(text, minimum=minimum, what=what)
    if value > BPS_WHOLE:
        raise ValueError(f"{what} must be at most {BPS_WHOLE} (100%), got {value}")
    return value


def parse_share(text: str) -> flows_pb2.RevenueShare:
    """A revenue share `PARTY:BPS`, e.g. `m1:7000` (the party may itself contain colons)."""
    party, sep, bps = text.rpartition(":")
    if not sep or not party or not bps:
        raise ValueError(f"a share must be written PARTY:BPS, e.g. m1:7000, got {text!r}")
    return flows_pb2.RevenueShare(party=party, share_bps=parse_bps(bps, minimum=1, what="share bps"))


def parse_coupon(text: str) -> flows_pb2.Coupon:
    """A coupon `ISSUER:AMOUNT[:MERCHANT_SHARE_BPS]`; the merchant's share is for a `shared` coupon only."""
    parts = text.split(":")
    usage = ("a coupon must be written ISSUER:AMOUNT or shared:AMOUNT:MERCHANT_SHARE_BPS with ISSUER one of "
             f"{', '.join(COUPON_ISSUERS)}, got {text!r}")
    if len(parts) not in (2, 3) or parts[0].lower() not in COUPON_ISSUERS:
        raise ValueError(usage)
    issuer = parts[0].lower()
    coupon = flows_pb2.Coupon(issuer=fmt.enum_value(flows_pb2.CouponIssuer, issuer),
                              amount=fmt.parse_amount(parts[1], what="coupon amount"))
    if len(parts) == 3:
        if issuer != "shared":
            raise ValueError(f"only a shared coupon takes a merchant share, got {text!r}")
        coupon.merchant_share_bps = parse_bps(parts[2], what="coupon merchant share bps")
    return coupon


def parse_timestamp(text: str) -> timestamp_pb2.Timestamp:
    """An RFC 3339 time such as 2026-05-01T12:00:00Z."""
    ts = timestamp_pb2.Timestamp()
    try:
        ts.FromJsonString(text)
    except ValueError:
        raise ValueError(f"expected an RFC 3339 time such as 2026-05-01T12:00:00Z, got {text!r}") from None
    return ts


def flow_message(args: argparse.Namespace):
    """The typed flow message of `tally post FLOW`, from its parsed arguments (ValueError on a bad combination)."""
    currency = args.currency.upper()
    flow = args.flow
    if flow == "funding":
        return flows_pb2.FundingFlow(consumer=args.consumer, processor=args.processor, amount=args.amount,
                                     currency=currency, external_ref=args.external_ref or "")
    if flow == "usage":
        return flows_pb2.UsageFlow(consumer=args.consumer, merchant=args.merchant, amount=args.amount,
                                   currency=currency, affiliate=args.affiliate or "", shares=args.shares or (),
                                   meter=args.meter or "", hold_id=args.hold or "")
    if flow == "acquisition":
        message = flows_pb2.AcquisitionFlow(merchant=args.merchant, channel=args.channel, amount=args.amount,
                                            currency=currency, order_ref=args.order_ref or "")
        if args.coupon is not None:
            message.coupon.CopyFrom(args.coupon)
            message.coupon.coupon_id = args.coupon_id or ""
        elif args.coupon_id:
            raise ValueError("--coupon-id needs --coupon")
        return message
    if flow == "refund":
        return flows_pb2.RefundFlow(original_request_id=args.original, amount=args.amount, currency=currency,
                                    reason=args.reason or "")
    if flow == "settlement":
        needs = {"merchant": "merchant", "processor": "processor"}.get(args.kind, "channel")
        if not getattr(args, needs):
            raise ValueError(f"a {args.kind} settlement needs --{needs}")
        if args.kind == "merchant" and args.actual is not None:
            raise ValueError("--actual is for channel and bank settlements (what actually arrived)")
        message = flows_pb2.SettlementFlow(kind=fmt.enum_value(flows_pb2.SettlementKind, args.kind),
                                           merchant=args.merchant or "", channel=args.channel or "",
                                           processor=args.processor or "", amount=args.amount, currency=currency,
                                           batch_ref=args.batch_ref or "")
        if args.actual is not None:
            message.actual_amount = args.actual
        return message
    if flow == "payout":
        return flows_pb2.PayoutFlow(merchant=args.merchant, amount=args.amount, currency=currency)
    if flow == "guarantee":
        return flows_pb2.GuaranteeFlow(merchant=args.merchant, amount=args.amount, currency=currency,
                                       mode=fmt.enum_value(flows_pb2.GuaranteeMode, args.mode))
    raise ValueError(f"unknown flow {flow!r}")


# ---------------------------------------------------------------------------------------------- output


def posted_lines_table(vouchers: Iterable[types_pb2.Voucher], scale: int | None) -> str:
    """One row per voucher line: voucher sequence, flow, rule id, account code, side, amount, currency."""
    columns = ["seq", "flow", "rule", "line", "account", "side", "amount", "currency"]
    numeric = ["seq", "line", "amount"]
    if scale is not None:
        columns.insert(columns.index("amount") + 1, "amount_dec")
        numeric.append("amount_dec")
    rows = []
    for voucher in vouchers:
        for line in voucher.lines:
            amount = fmt.amount_cells(line.amount, scale, line.currency)
            rows.append([voucher.sequence, voucher.flow_type, voucher.rule_id, line.line_no,
                         line.account_code or line.account_id, fmt.enum_label(types_pb2.Side, line.side),
                         *amount, line.currency])
    return fmt.format_table(columns, rows, numeric=numeric)


def posted_text(response: post_pb.PostResponse, scale: int | None) -> str:
    """The lines table, then each voucher's sequence and id (the id is what `tally reverse` takes)."""
    ids = "\n".join(f"voucher {v.sequence}: {v.id}" + (f"  ({v.memo})" if v.memo else "") for v in response.vouchers)
    return f"{posted_lines_table(response.vouchers, scale)}\n\n{ids}" if ids else "no vouchers"


# ---------------------------------------------------------------------------------------------- command


def cmd_post(args: argparse.Namespace) -> int:
    try:
        flow = flow_message(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return common.EXIT_UNREACHABLE  # bad arguments
    request = post_pb.PostRequest(request_id=common.request_id(args), memo=args.memo or "",
                                  metadata=dict(args.meta or ()), **{args.flow: flow})
    if args.effective_time is not None:
        request.effective_time.CopyFrom(args.effective_time)
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.Post(request)
    return common.emit(args, response, lambda r: posted_text(r, args.scale))


def _amount_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amount", required=True, type=common.arg(fmt.parse_amount), metavar="N",
                        help="integer atomic units (1.5 USD at scale 6 is 1500000)")
    parser.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")


def _party(parser: argparse.ArgumentParser, name: str, help: str, required: bool = True) -> None:
    parser.add_argument(f"--{name}", required=required, metavar=name.upper(), help=help)


def add_post_parser(commands, client: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Registers `tally post FLOW` on the `tally` command's subparsers."""
    post = commands.add_parser(
        "post", help="post a business flow (funding, usage, ...) through the server's rule set",
        description="Posts one typed business flow; the server's rule set decides the vouchers, which are "
                    "printed one row per line. `tally rules show` lists what each flow posts.")
    flows = post.add_subparsers(dest="flow", required=True, metavar="FLOW")

    def flow_parser(name: str, help: str) -> argparse.ArgumentParser:
        parser = flows.add_parser(name, parents=[client], help=help, description=help)
        parser.set_defaults(func=cmd_post)
        return parser

    funding = flow_parser("funding", "money enters a consumer's account through a payment processor")
    _party(funding, "consumer", "the consumer credited")
    _party(funding, "processor", "the payment processor, e.g. card, ach, crypto, invoice")
    _amount_options(funding)
    funding.add_argument("--external-ref", metavar="REF", help="the processor's reference for the payment")

    usage = flow_parser("usage", "metered usage: a consumer pays a merchant, less platform fee and commission")
    _party(usage, "consumer", "the consumer debited")
    _party(usage, "merchant", "the merchant credited")
    _amount_options(usage)
    _party(usage, "affiliate", "earns the affiliate commission", required=False)
    usage.add_argument("--share", dest="shares", type=common.arg(parse_share), action="append", metavar="PARTY:BPS",
                       help="split the merchant's part: basis points per party, summing to 10000 (repeat)")
    usage.add_argument("--hold", metavar="HOLD_ID", help="consume from this hold on the consumer's account")
    usage.add_argument("--meter", metavar="TEXT", help="what was metered")

    acquisition = flow_parser("acquisition", "a payment acquired through a channel, perhaps with a coupon")
    _party(acquisition, "merchant", "the merchant the order is for")
    _party(acquisition, "channel", "the payment channel, e.g. visa")
    _amount_options(acquisition)
    acquisition.add_argument("--coupon", type=common.arg(parse_coupon), metavar="ISSUER:AMOUNT[:BPS]",
                             help=f"a coupon: ISSUER one of {', '.join(COUPON_ISSUERS)}; a shared coupon may add "
                                  "the merchant's share in basis points, e.g. shared:500000:4000")
    acquisition.add_argument("--coupon-id", metavar="ID", help="the coupon's id (with --coupon)")
    acquisition.add_argument("--order-ref", metavar="REF", help="the order's reference")

    refund = flow_parser("refund", "refund part or all of an earlier acquisition or usage")
    refund.add_argument("--original", required=True, metavar="REQUEST_ID",
                        help="the request id that posted the original flow")
    _amount_options(refund)
    refund.add_argument("--reason")

    settlement = flow_parser("settlement", "merchant pending -> settled, or a channel / bank clearing")
    settlement.add_argument("--kind", required=True, choices=SETTLEMENT_KINDS)
    _party(settlement, "merchant", "the merchant (merchant settlements)", required=False)
    _party(settlement, "channel", "the channel (channel and bank settlements)", required=False)
    _party(settlement, "processor", "the payment processor (processor settlements)", required=False)
    _amount_options(settlement)
    settlement.add_argument("--actual", type=common.arg(fmt.parse_amount, minimum=0, what="actual amount"),
                            metavar="N", help="what actually arrived (channel and bank); default: the amount")
    settlement.add_argument("--batch-ref", metavar="REF", help="the settlement batch's reference")

    payout = flow_parser("payout", "pay settled funds out to the merchant's bank account (rounded down to the "
                                   "bank's minor unit; the residue stays)")
    _party(payout, "merchant", "the merchant paid")
    _amount_options(payout)

    guarantee = flow_parser("guarantee", "a guarantee the merchant owes, deducted from its next settlements")
    _party(guarantee, "merchant", "the merchant that owes it")
    guarantee.add_argument("--mode", choices=fmt.enum_labels(flows_pb2.GuaranteeMode), default="settlement_order",
                           help="settlement_order: deducted from the next settlements; account: booked to the "
                                "merchant's deduction account; account_collection: collect up to --amount of it "
                                "from the settled balance")
    _amount_options(guarantee)

    for parser in (funding, usage, acquisition, refund, settlement, payout, guarantee):
        parser.add_argument("--memo", help="voucher memo")
        parser.add_argument("--meta", type=common.arg(fmt.parse_meta), nargs="+", action="extend",
                            metavar="KEY=VALUE", help="voucher metadata entries (repeatable)")
        parser.add_argument("--effective-time", type=common.arg(parse_timestamp), metavar="RFC3339",
                            help="when the business fact happened (default: the time of posting)")
        common.request_id_option(parser)
    return post
