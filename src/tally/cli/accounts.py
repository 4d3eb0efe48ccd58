"""`tally accounts merge | secure | security`: account structures (merging, secured credit).

    tally accounts merge TARGET SOURCE... [--refuse-holds] [--memo TEXT]
    tally accounts secure CREDIT DEPOSIT --ratio-bps N [--bind-limit]
    tally accounts security ACCOUNT
    tally accounts move MAIN FROM_SUB TO_SUB AMOUNT --currency USD [--memo TEXT]

A sub-account is opened like any account, coded MAIN/NAME (`tally accounts create merchant_1/settled ...`):
it becomes the main account's child.
"""

from __future__ import annotations

import argparse

from tally.cli import common
from tally.cli import format as fmt
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2

RATIO_BPS_MAX = 10_000



def merged_text(response: acc_pb.MergeAccountsResponse) -> str:
    columns = ["source_account_id", "voucher_id", "amount", "moved_holds"]
    rows = [[m.source_account_id, m.voucher_id or "-", m.amount,
             ", ".join(f"{h.source_hold_id} -> {h.target_hold_id} ({h.amount})" for h in m.moved_holds) or "-"]
            for m in response.merged]
    target = response.target
    return (f"merged into {target.code} ({target.id})\n\n"
            + fmt.format_table(columns, rows, numeric=["amount"]))


def securities_text(securities, required: int | None = None) -> str:
    columns = ["credit_account_id", "deposit_account_id", "ratio_bps", "bound", "outstanding", "required_deposit",
               "credit_limit"]
    rows = [[s.credit_account_id, s.deposit_account_id, s.ratio_bps, "yes" if s.bind_credit_limit else "no",
             s.outstanding, s.required_deposit, s.credit_limit] for s in securities]
    text = fmt.format_table(columns, rows)
    return text if required is None else f"{text}\n\nrequired_deposit  {required}"


def cmd_accounts_merge(args: argparse.Namespace) -> int:
    policy = acc_pb.MERGE_HOLD_POLICY_REFUSE if args.refuse_holds else acc_pb.MERGE_HOLD_POLICY_MOVE
    request = acc_pb.MergeAccountsRequest(request_id=common.request_id(args), sources=args.sources,
                                          target=args.into, hold_policy=policy, memo=args.memo or "")
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        return common.emit(args, stub.MergeAccounts(request), merged_text)


def cmd_accounts_secure(args: argparse.Namespace) -> int:
    request = acc_pb.SetAccountSecurityRequest(request_id=common.request_id(args), credit_account=args.credit,
                                               deposit_account=args.deposit, ratio_bps=args.ratio_bps,
                                               bind_credit_limit=args.bind_limit)
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        return common.emit(args, stub.SetAccountSecurity(request), lambda r: securities_text([r.security]))


def cmd_accounts_security(args: argparse.Namespace) -> int:
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        response = stub.GetAccountSecurity(acc_pb.GetAccountSecurityRequest(account=args.account))
    return common.emit(args, response, lambda r: securities_text(r.securities, r.required_deposit))


def cmd_accounts_move(args: argparse.Namespace) -> int:
    flow = flows_pb2.SubAccountTransferFlow(account=args.main, from_sub=args.from_sub, to_sub=args.to_sub,
                                            amount=args.amount, currency=args.currency.upper(), memo=args.memo or "")
    request = post_pb.PostRequest(request_id=common.request_id(args), sub_account_transfer=flow)
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        return common.emit(args, stub.Post(request), lambda r: fmt.voucher_text(r.vouchers[0], args.scale))


def add_account_structure_verbs(verbs, client: argparse.ArgumentParser) -> None:
    """Registers `merge`, `secure` and `security` under `tally accounts`."""
    merge = verbs.add_parser("merge", parents=[client], help="fold accounts into a target (atomic, idempotent)")
    # Not `target`: that is the client's --target (the server address).
    common.account_arg(merge, "into", "TARGET", "the account that remains")
    merge.add_argument("sources", type=common.arg(fmt.account_ref), nargs="+", metavar="SOURCE",
                       help="accounts merged into the target and closed (code or id)")
    merge.add_argument("--refuse-holds", action="store_true",
                       help="refuse the merge if a source has active holds (default: move them)")
    merge.add_argument("--memo")
    common.request_id_option(merge)
    merge.set_defaults(func=cmd_accounts_merge)

    secure = verbs.add_parser("secure", parents=[client], help="link a credit account to its security deposit")
    common.account_arg(secure, "credit", "CREDIT", "the credit account")
    common.account_arg(secure, "deposit", "DEPOSIT", "the security-deposit account")
    secure.add_argument("--ratio-bps", required=True, metavar="N",
                        type=common.arg(fmt.parse_amount, minimum=1, what="ratio_bps"),
                        help=f"credit per deposit in basis points, 1..{RATIO_BPS_MAX}")
    secure.add_argument("--bind-limit", action="store_true",
                        help="bind the credit limit to the deposit (deposit x ratio, within the account's own limit)")
    common.request_id_option(secure)
    secure.set_defaults(func=cmd_accounts_secure)

    security = verbs.add_parser("security", parents=[client], help="show a credit account's security, or what a "
                                "deposit secures")
    common.account_arg(security)
    security.set_defaults(func=cmd_accounts_security)

    move = verbs.add_parser("move", parents=[client], help="move money between two sub-accounts of one main account")
    move.add_argument("main", metavar="MAIN", help="the main account's code")
    move.add_argument("from_sub", metavar="FROM_SUB", help="sub-account debited (the name after MAIN/)")
    move.add_argument("to_sub", metavar="TO_SUB", help="sub-account credited")
    move.add_argument("amount", type=common.arg(fmt.parse_amount), metavar="AMOUNT", help="integer atomic units")
    move.add_argument("--currency", required=True)
    move.add_argument("--memo")
    common.request_id_option(move)
    move.set_defaults(func=cmd_accounts_move)
