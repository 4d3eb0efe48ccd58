"""`tally payouts`: linked bank accounts, payout requests, batches, their bank instructions and returns.

    tally payouts link MERCHANT --currency USD --holder NAME [--verified]
                       (--iban IBAN --bic BIC | --aba-routing N --account-number N)
    tally payouts verify BANK_ACCOUNT_ID [--status verified|unverified|disabled]
    tally payouts request BANK_ACCOUNT_ID AMOUNT --currency USD
    tally payouts batch --currency USD                  # the cut-off: one batch per bank account
    tally payouts export BATCH_ID [--format pain001|csv] [--output FILE]
    tally payouts send BATCH_ID | settle BATCH_ID
    tally payouts return PAYOUT_ID --reason TEXT
    tally payouts show BATCH_ID | list [--state S] [--batch ID] [--all]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tally.cli import common
from tally.cli import format as fmt
from tally.v1 import settlement_service_pb2 as pb
from tally.v1 import settlement_service_pb2_grpc as pb_grpc
from tally.v1 import types_pb2

EXPORT_FORMATS = {"pain001": pb.PAYOUT_EXPORT_FORMAT_PAIN001, "csv": pb.PAYOUT_EXPORT_FORMAT_CSV}
ACCOUNT_STATUSES = fmt.enum_labels(pb.BankAccountStatus)
PAYOUT_STATES = fmt.enum_labels(pb.PayoutState)



# ---------------------------------------------------------------------------------------------- text


def bank_account_text(a: pb.BankAccount) -> str:
    return fmt.format_fields([("id", a.id), ("merchant", a.merchant), ("currency", a.currency),
                              ("holder", a.holder_name), ("iban", a.iban), ("bic", a.bic),
                              ("aba_routing", a.aba_routing), ("account_number", a.account_number),
                              ("status", fmt.enum_label(pb.BankAccountStatus, a.status))])


def payouts_table(payouts, scale: int | None) -> str:
    rows = [[p.id, p.merchant, fmt.enum_label(pb.PayoutState, p.state), fmt.amount_text(p.amount, scale, p.currency),
             p.currency, p.batch_id, p.reason] for p in payouts]
    return fmt.format_table(["payout", "merchant", "state", "amount", "currency", "batch", "reason"], rows)


def batch_text(b: pb.PayoutBatch, scale: int | None) -> str:
    return fmt.format_fields([("batch", b.id), ("bank_account", b.bank_account_id), ("currency", b.currency),
                              ("state", fmt.enum_label(pb.PayoutBatchState, b.state)), ("payouts", b.payout_count),
                              ("total", fmt.amount_text(b.total, scale, b.currency)),
                              ("send_voucher", b.send_voucher_id),
                              ("sent", b.sent_date), ("expected_settlement", b.expected_settlement_date)])


# ---------------------------------------------------------------------------------------------- commands


def _call(args: argparse.Namespace, name: str, render, **fields) -> int:
    request = getattr(pb, f"{name}Request")(**fields)
    with common.stub(args, pb_grpc.SettlementServiceStub) as stub:
        return common.emit(args, getattr(stub, name)(request), render)


def cmd_link(args: argparse.Namespace) -> int:
    return _call(args, "LinkBankAccount", lambda r: bank_account_text(r.bank_account),
                 request_id=common.request_id(args), currency=args.currency.upper(),
                 merchant_account=types_pb2.AccountRef(code=f"merchant:{args.merchant}:{args.currency.upper()}/settled"),
                 holder_name=args.holder, iban=args.iban or "", bic=args.bic or "", aba_routing=args.aba_routing or "",
                 account_number=args.account_number or "", verified=args.verified)


def cmd_verify(args: argparse.Namespace) -> int:
    return _call(args, "UpdateBankAccountStatus", lambda r: bank_account_text(r.bank_account),
                 request_id=common.request_id(args), bank_account_id=args.bank_account_id,
                 status=fmt.enum_value(pb.BankAccountStatus, args.status))


def cmd_request(args: argparse.Namespace) -> int:
    return _call(args, "RequestPayout", lambda r: payouts_table([r.payout], args.scale),
                 request_id=common.request_id(args), bank_account_id=args.bank_account_id, amount=args.amount,
                 currency=args.currency.upper())


def cmd_batch(args: argparse.Namespace) -> int:
    def render(r) -> str:
        parts = [batch_text(b, args.scale) for b in r.batches] or ["no payouts to batch"]
        if r.failed_payouts:
            parts.append("failed at the cut-off:\n" + payouts_table(r.failed_payouts, args.scale))
        return "\n\n".join(parts)

    return _call(args, "CreatePayoutBatches", render, request_id=common.request_id(args),
                 currency=args.currency.upper())


def cmd_export(args: argparse.Namespace) -> int:
    request = pb.ExportPayoutBatchRequest(batch_id=args.batch_id, format=EXPORT_FORMATS[args.format])
    with common.stub(args, pb_grpc.SettlementServiceStub) as stub:
        response = stub.ExportPayoutBatch(request)
    target = Path(args.output or response.file_name)
    target.write_bytes(response.content)
    print(f"wrote {target} ({len(response.content)} bytes)", file=sys.stderr)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    return _call(args, "SendPayoutBatch", lambda r: batch_text(r.batch, args.scale),
                 request_id=common.request_id(args), batch_id=args.batch_id)


def cmd_settle(args: argparse.Namespace) -> int:
    return _call(args, "SettlePayoutBatch", lambda r: batch_text(r.batch, args.scale),
                 request_id=common.request_id(args), batch_id=args.batch_id)


def cmd_return(args: argparse.Namespace) -> int:
    return _call(args, "ReturnPayout", lambda r: payouts_table([r.payout], args.scale),
                 request_id=common.request_id(args), payout_id=args.payout_id, reason=args.reason)


def cmd_show(args: argparse.Namespace) -> int:
    return _call(args, "GetPayoutBatch", lambda r: batch_text(r.batch, args.scale) + "\n\n"
                 + payouts_table(r.payouts, args.scale), batch_id=args.batch_id)


def cmd_list(args: argparse.Namespace) -> int:
    request = pb.ListPayoutsRequest(state=fmt.enum_value(pb.PayoutState, args.state) if args.state else 0,
                                    batch_id=args.batch or "", page_size=args.page_size or 0,
                                    page_token=args.page_token or "")
    with common.stub(args, pb_grpc.SettlementServiceStub) as stub:
        response = common.pages(stub.ListPayouts, request, "payouts", args.all)
    return common.emit(args, response, lambda r: payouts_table(r.payouts, args.scale))


def add_payouts_parser(commands, client: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Registers `tally payouts VERB` on the `tally` command's subparsers."""
    payouts = commands.add_parser("payouts", help="bank accounts, payout requests, batches and returns")
    verbs = payouts.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help: str, func, request_id: bool = True) -> argparse.ArgumentParser:
        parser = verbs.add_parser(name, parents=[client], help=help)
        if request_id:
            common.request_id_option(parser)
        parser.set_defaults(func=func)
        return parser

    link = verb("link", "link a bank account to a merchant", cmd_link)
    link.add_argument("merchant", metavar="MERCHANT",
                      help="the merchant (its account merchant:MERCHANT:CURRENCY/settled)")
    link.add_argument("--currency", required=True)
    link.add_argument("--holder", required=True, help="the account holder's name")
    link.add_argument("--iban")
    link.add_argument("--bic")
    link.add_argument("--aba-routing", metavar="N")
    link.add_argument("--account-number", metavar="N")
    link.add_argument("--verified", action="store_true", help="the operator has verified the account")

    status = verb("verify", "set a linked bank account's status", cmd_verify)
    status.add_argument("bank_account_id", metavar="BANK_ACCOUNT_ID")
    status.add_argument("--status", choices=ACCOUNT_STATUSES, default="verified")

    request = verb("request", "request a payout of settled funds to a merchant's linked bank account", cmd_request)
    request.add_argument("bank_account_id", metavar="BANK_ACCOUNT_ID")
    request.add_argument("amount", type=common.arg(fmt.parse_amount), metavar="AMOUNT", help="integer atomic units")
    request.add_argument("--currency", required=True)

    batch = verb("batch", "the cut-off: batch the requested payouts, one batch per bank account", cmd_batch)
    batch.add_argument("--currency", required=True)

    export = verb("export", "write a batch's bank instruction (pain.001 or CSV)", cmd_export, request_id=False)
    export.add_argument("batch_id", metavar="BATCH_ID")
    export.add_argument("--format", choices=sorted(EXPORT_FORMATS), default="pain001")
    export.add_argument("--output", metavar="FILE", help="default: the name the server suggests")

    for name, help, func in (("send", "the bank sent the batch: its total leaves the bank account", cmd_send),
                             ("settle", "the bank settled the batch", cmd_settle)):
        verb(name, help, func).add_argument("batch_id", metavar="BATCH_ID")

    give_back = verb("return", "the money came back: a requested payout fails, a sent one is returned", cmd_return)
    give_back.add_argument("payout_id", metavar="PAYOUT_ID")
    give_back.add_argument("--reason", required=True, help="the bank's reason, e.g. AC04 account closed")

    verb("show", "a batch and its payouts", cmd_show, request_id=False).add_argument("batch_id", metavar="BATCH_ID")
    listing = verb("list", "list payouts", cmd_list, request_id=False)
    listing.add_argument("--state", choices=PAYOUT_STATES)
    listing.add_argument("--batch", metavar="BATCH_ID")
    listing.add_argument("--page-size", type=common.arg(fmt.parse_amount), metavar="N")
    listing.add_argument("--page-token")
    listing.add_argument("--all", action="store_true")
    return payouts
