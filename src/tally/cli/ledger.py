"""Accounts, transfers, adjustments, balances, statements and vouchers: the ledger verbs of `tally`."""

from __future__ import annotations

import argparse

from google.protobuf import field_mask_pb2

from tally.cli import common
from tally.cli import format as fmt
from tally.cli.accounts import add_account_structure_verbs
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import flows_pb2, types_pb2

# ---------------------------------------------------------------------------------------------- accounts


def _account_text(response) -> str:
    return fmt.format_fields(fmt.account_fields(response.account))


def cmd_accounts_create(args: argparse.Namespace) -> int:
    request = acc_pb.CreateAccountRequest(
        request_id=common.request_id(args), code=args.code, name=args.name or "", currency=args.currency.upper(),
        type=fmt.enum_value(types_pb2.AccountType, args.type), credit_limit=args.credit_limit,
        metadata=dict(args.meta or ()))
    if args.normal_side:
        request.normal_side = fmt.enum_value(types_pb2.Side, args.normal_side)
    if args.floor:
        request.floor_policy = fmt.enum_value(types_pb2.FloorPolicy, args.floor)
    if args.parent:
        request.parent.CopyFrom(args.parent)
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        return common.emit(args, stub.CreateAccount(request), _account_text)


def cmd_accounts_get(args: argparse.Namespace) -> int:
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        response = stub.GetAccount(acc_pb.GetAccountRequest(account=args.account))
    return common.emit(args, response, lambda r: _account_text(r) + "\n\n"
                 + fmt.format_fields(fmt.balance_fields(r.balance, args.scale, r.account.code)))


def _account_label(stub, ref) -> str:
    """`code (name)` of the account a person named by code or id: what they read instead of its id."""
    account = stub.GetAccount(acc_pb.GetAccountRequest(account=ref)).account if ref.id or not ref.code else None
    code, name = (account.code, account.name) if account else (ref.code, "")
    return f"{code} ({name})" if name else code


def cmd_accounts_list(args: argparse.Namespace) -> int:
    request = acc_pb.ListAccountsRequest(page_size=args.page_size or 0, page_token=args.page_token or "",
                                         currency=(args.currency or "").upper())
    if args.type:
        request.type = fmt.enum_value(types_pb2.AccountType, args.type)
    if args.status:
        request.status = fmt.enum_value(types_pb2.AccountStatus, args.status)
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        response = common.pages(stub.ListAccounts, request, "accounts", args.all)
    return common.emit(args, response, lambda r: fmt.accounts_table(r.accounts))


def _update_account(args: argparse.Namespace, update: types_pb2.Account, paths: list[str]) -> int:
    request = acc_pb.UpdateAccountRequest(request_id=common.request_id(args), account=args.account,
                                          account_update=update, update_mask=field_mask_pb2.FieldMask(paths=paths))
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        return common.emit(args, stub.UpdateAccount(request), _account_text)


def cmd_accounts_status(args: argparse.Namespace) -> int:
    """freeze, unfreeze and close: set the account status."""
    status = {"freeze": types_pb2.ACCOUNT_STATUS_FROZEN, "unfreeze": types_pb2.ACCOUNT_STATUS_ACTIVE,
              "close": types_pb2.ACCOUNT_STATUS_CLOSED}[args.verb]
    return _update_account(args, types_pb2.Account(status=status), ["status"])


def cmd_accounts_set_limit(args: argparse.Namespace) -> int:
    return _update_account(args, types_pb2.Account(credit_limit=args.limit), ["credit_limit"])


def cmd_balance(args: argparse.Namespace) -> int:
    request = acc_pb.GetBalanceRequest(account=args.account, as_of_date=args.as_of_date or "",
                                       include_descendants=args.descendants, min_voucher_sequence=args.min_sequence)
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        response = stub.GetBalance(request)
        account = _account_label(stub, args.account) if fmt.people(args.scale) and not args.json else None
    return common.emit(args, response, lambda r: "\n\n".join([
        fmt.format_fields(fmt.balance_fields(r.balance, args.scale, account)),
        *(fmt.rollup_text(u, args.scale) for u in r.rollups)]))


def cmd_statement(args: argparse.Namespace) -> int:
    request = acc_pb.ListEntriesRequest(account=args.account, page_size=args.page_size or 0,
                                        page_token=args.page_token or "", start_date=args.start_date or "",
                                        end_date=args.end_date or "", min_voucher_sequence=args.min_sequence,
                                        include_descendants=args.descendants)
    with common.stub(args, acc_grpc.AccountServiceStub) as stub:
        response = common.pages(stub.ListEntries, request, "entries", args.all)
    if args.descendants:  # entries of several accounts: no one opening balance
        return common.emit(args, response, lambda r: fmt.entries_table(r.entries, args.scale, accounts=True))
    return common.emit(args, response, lambda r: (
        f"opening balance: {fmt.amount_text(r.opening_balance, args.scale, r.entries[0].currency if r.entries else '')}"
        "\n\n"
        + fmt.entries_table(r.entries, args.scale)))


# ---------------------------------------------------------------------------------------------- postings


def post(args: argparse.Namespace, request: post_pb.PostRequest) -> int:
    """Posts a flow and shows the vouchers it made (the flow verbs of other modules use it too)."""
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.Post(request)
    return common.emit(args, response, lambda r: "\n\n".join(fmt.voucher_text(v, args.scale) for v in r.vouchers))


def cmd_transfer(args: argparse.Namespace) -> int:
    flow = flows_pb2.TransferFlow(amount=args.amount, currency=args.currency.upper(), memo=args.memo or "")
    getattr(flow, "from").CopyFrom(args.source)  # `from` is a Python keyword
    flow.to.CopyFrom(args.destination)
    return post(args, post_pb.PostRequest(request_id=common.request_id(args), memo=args.memo or "", transfer=flow))


def cmd_adjust(args: argparse.Namespace) -> int:
    flow = flows_pb2.AdjustmentFlow(lines=args.lines, reason=args.reason)
    return post(args, post_pb.PostRequest(request_id=common.request_id(args), adjustment=flow))


def cmd_reverse(args: argparse.Namespace) -> int:
    request = post_pb.ReverseVoucherRequest(request_id=common.request_id(args), voucher_id=args.voucher_id,
                                            reason=args.reason)
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.ReverseVoucher(request)
    return common.emit(args, response, lambda r: fmt.voucher_text(r.voucher, args.scale))


def cmd_vouchers_get(args: argparse.Namespace) -> int:
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = stub.GetVoucher(post_pb.GetVoucherRequest(voucher_id=args.voucher_id))
    return common.emit(args, response, lambda r: fmt.voucher_text(r.voucher, args.scale))


def cmd_vouchers_list(args: argparse.Namespace) -> int:
    request = post_pb.ListVouchersRequest(page_size=args.page_size or 0, page_token=args.page_token or "",
                                          flow_type=args.flow or "")
    if args.account:
        request.account_id = common.account_id(args, args.account)
    with common.stub(args, post_grpc.AccountingServiceStub) as stub:
        response = common.pages(stub.ListVouchers, request, "vouchers", args.all)
    return common.emit(args, response, lambda r: fmt.vouchers_table(r.vouchers, args.scale))



def add_ledger_parsers(commands, client: argparse.ArgumentParser) -> None:
    _add_account_commands(commands, client)
    _add_ledger_commands(commands, client)
    _add_voucher_commands(commands, client)


def _add_account_commands(commands, client: argparse.ArgumentParser) -> None:
    accounts = commands.add_parser("accounts", help="create, inspect and maintain accounts")
    verbs = accounts.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", parents=[client], help="open an account")
    create.add_argument("code", metavar="CODE", help="account code, unique within the tenant")
    create.add_argument("--type", required=True, choices=fmt.enum_labels(types_pb2.AccountType))
    create.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    create.add_argument("--normal-side", choices=fmt.enum_labels(types_pb2.Side), help="internal accounts only")
    create.add_argument("--credit-limit", type=common.arg(fmt.parse_amount, minimum=0, what="credit limit"), default=0,
                        metavar="N", help="atomic units (credit accounts only)")
    create.add_argument("--floor", choices=fmt.enum_labels(types_pb2.FloorPolicy), help="internal accounts only")
    create.add_argument("--name", help="display name")
    create.add_argument("--parent", type=common.arg(fmt.account_ref), metavar="CODE_OR_ID", help="parent account")
    create.add_argument("--meta", type=common.arg(fmt.parse_meta), nargs="+", action="extend", metavar="KEY=VALUE",
                        help="metadata entries (repeatable)")
    common.request_id_option(create)
    create.set_defaults(func=cmd_accounts_create)

    get = verbs.add_parser("get", parents=[client], help="show an account and its balance")
    common.account_arg(get)
    get.set_defaults(func=cmd_accounts_get)

    listing = verbs.add_parser("list", parents=[client], help="list accounts")
    listing.add_argument("--type", choices=fmt.enum_labels(types_pb2.AccountType))
    listing.add_argument("--status", choices=fmt.enum_labels(types_pb2.AccountStatus))
    listing.add_argument("--currency")
    common.paging_options(listing)
    listing.set_defaults(func=cmd_accounts_list)

    for verb, text in (("freeze", "stop postings"), ("unfreeze", "accept postings again"),
                       ("close", "close for good (balance must be zero)")):
        status = verbs.add_parser(verb, parents=[client], help=text)
        common.account_arg(status)
        common.request_id_option(status)
        status.set_defaults(func=cmd_accounts_status)

    limit = verbs.add_parser("set-limit", parents=[client], help="set a credit account's credit limit")
    common.account_arg(limit)
    limit.add_argument("limit", type=common.arg(fmt.parse_amount, minimum=0, what="credit limit"), metavar="N",
                       help="atomic units")
    common.request_id_option(limit)
    limit.set_defaults(func=cmd_accounts_set_limit)
    add_account_structure_verbs(verbs, client)  # merge, secure, security, move


def _add_ledger_commands(commands, client: argparse.ArgumentParser) -> None:
    transfer = commands.add_parser("transfer", parents=[client], help="move an amount from one account to another")
    common.account_arg(transfer, "source", "FROM", "account debited")
    common.account_arg(transfer, "destination", "TO", "account credited")
    transfer.add_argument("amount", type=common.arg(fmt.parse_amount), metavar="AMOUNT", help="integer atomic units")
    transfer.add_argument("--currency", required=True)
    transfer.add_argument("--memo")
    common.request_id_option(transfer)
    transfer.set_defaults(func=cmd_transfer)

    adjust = commands.add_parser("adjust", parents=[client], help="post a balanced set of lines")
    adjust.add_argument("--line", dest="lines", type=common.arg(fmt.parse_line), action="append", required=True,
                        metavar="SIDE:ACCOUNT:AMOUNT:CUR", help="e.g. debit:cash:1000:USD (repeat for each line)")
    adjust.add_argument("--reason", required=True)
    common.request_id_option(adjust)
    adjust.set_defaults(func=cmd_adjust)

    balance = commands.add_parser("balance", parents=[client], help="show an account's balance")
    common.account_arg(balance)
    balance.add_argument("--as-of-date", type=common.arg(fmt.parse_iso_date), metavar="YYYY-MM-DD",
                         help="balance at the end of this accounting day")
    balance.add_argument("--descendants", action="store_true",
                         help="also roll up the accounts under it (own, descendants, total per currency)")
    _min_sequence_option(balance)
    balance.set_defaults(func=cmd_balance)

    statement = commands.add_parser("statement", parents=[client], help="list an account's entries")
    common.account_arg(statement)
    statement.add_argument("--from", dest="start_date", type=common.arg(fmt.parse_iso_date), metavar="YYYY-MM-DD")
    statement.add_argument("--to", dest="end_date", type=common.arg(fmt.parse_iso_date), metavar="YYYY-MM-DD")
    statement.add_argument("--descendants", action="store_true",
                           help="the whole subtree's entries as one timeline (at most 100 accounts)")
    common.paging_options(statement)
    _min_sequence_option(statement)
    statement.set_defaults(func=cmd_statement)


def _min_sequence_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-sequence", type=int, default=0, metavar="N",
                        help="read-your-writes on a read replica: wait until it holds the tenant's voucher N")


def _add_voucher_commands(commands, client: argparse.ArgumentParser) -> None:
    vouchers = commands.add_parser("vouchers", help="read posted vouchers")
    verbs = vouchers.add_subparsers(dest="verb", required=True, metavar="VERB")
    get = verbs.add_parser("get", parents=[client], help="show a voucher and its lines")
    get.add_argument("voucher_id", metavar="ID")
    get.set_defaults(func=cmd_vouchers_get)
    listing = verbs.add_parser("list", parents=[client], help="list vouchers")
    listing.add_argument("--account", metavar="CODE_OR_ID", help="only vouchers with a line on this account")
    listing.add_argument("--flow", metavar="TYPE", help="only vouchers of this flow type (transfer, adjustment, ...)")
    common.paging_options(listing)
    listing.set_defaults(func=cmd_vouchers_list)

    reverse = commands.add_parser("reverse", parents=[client], help="reverse a posted voucher")
    reverse.add_argument("voucher_id", metavar="VOUCHER_ID")
    reverse.add_argument("--reason", required=True)
    common.request_id_option(reverse)
    reverse.set_defaults(func=cmd_reverse)


