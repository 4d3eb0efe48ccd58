"""Accounting days and statements: `tally days close|show|list|balances`, `tally statements list|show`.

    tally days close DATE [--early]   close a day whose cut-off has passed (and the open days before it);
                                      --early closes the current day now (postings then get the next date)
    tally days show DATE              the day's state, trial balance per currency and totals per flow type
    tally days list                   the days closed (or closing), newest first
    tally days balances DATE          the closing balance of each account the day moved
    tally days summaries DATE         the day's summary vouchers (summarized flows, one per currency)
    tally days detail DATE FLOW CUR   the detail vouchers one summary stands for
    tally days export DATE [--format csv|jsonl] [--output FILE]
                                      the general-ledger export: summary lines, then other flows' lines
    tally statements list ACCOUNT     the account's issued statements (cycles whose last day is closed)
    tally statements show ACCOUNT DATE  the statement whose cycle holds DATE, with its entries
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from tally.cli import common
from tally.cli import format as fmt
from tally.v1 import day_service_pb2 as day_pb
from tally.v1 import day_service_pb2_grpc as day_grpc
from tally.v1 import types_pb2


def state_label(state: int) -> str:
    return day_pb.DayState.Name(state).removeprefix("DAY_STATE_").lower()


def day_text(day: day_pb.AccountingDay, scale: int | None = None) -> str:
    header = fmt.format_fields([
        ("accounting_date", day.accounting_date), ("state", state_label(day.state)),
        ("vouchers", f"{day.voucher_count} (sequences {day.after_sequence + 1}..{day.last_sequence})"
         if day.last_sequence > day.after_sequence else day.voucher_count),
        ("accounts_closed", day.accounts_closed),
        ("closed_time", fmt.timestamp_text(day.closed_time) if day.HasField("closed_time") else "")])
    parts = [header]
    if day.currency_totals:
        rows = [[c.currency, *_amounts(c.debit_total, scale), *_amounts(c.credit_total, scale), c.line_count,
                 "balanced" if c.debit_total == c.credit_total else "NOT BALANCED"] for c in day.currency_totals]
        columns = ["currency", *_columns("debits", scale), *_columns("credits", scale), "lines", ""]
        parts.append("trial balance of the day's postings:\n" + fmt.format_table(
            columns, rows, numeric=[c for c in columns if c not in ("currency", "")]))
    if day.flow_totals:
        rows = [[f.flow_type, f.currency, f.voucher_count, *_amounts(f.amount_total, scale)] for f in day.flow_totals]
        columns = ["flow", "currency", "vouchers", *_columns("amount", scale)]
        parts.append("per flow type:\n" + fmt.format_table(columns, rows,
                                                           numeric=["vouchers", *_columns("amount", scale)]))
    return "\n\n".join(parts)


def _amounts(value: int, scale: int | None) -> list[object]:
    return [value] if scale is None else [value, fmt.format_decimal(value, scale)]


def _columns(name: str, scale: int | None) -> list[str]:
    return [name] if scale is None else [name, f"{name}_dec"]


def days_table(days, scale: int | None) -> str:
    if not days:
        return "no closed days"
    rows = [[d.accounting_date, state_label(d.state), d.voucher_count, d.accounts_closed,
             ", ".join(f"{c.currency} {c.debit_total}" for c in d.currency_totals)] for d in days]
    return fmt.format_table(["date", "state", "vouchers", "accounts", "debits = credits"], rows,
                            numeric=["vouchers", "accounts"])


def balances_table(balances, scale: int | None) -> str:
    if not balances:
        return "no closing balances (the day is not closed, or moved no account)"
    rows = [[b.account_id, b.currency, *_amounts(b.balance, scale), b.entry_count] for b in balances]
    columns = ["account_id", "currency", *_columns("balance", scale), "entries"]
    return fmt.format_table(columns, rows, numeric=[*_columns("balance", scale), "entries"])


def cmd_days_close(args: argparse.Namespace) -> int:
    request = day_pb.CloseAccountingDayRequest(accounting_date=args.date, early=args.early,
                                               request_id=common.request_id(args))
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = stub.CloseAccountingDay(request)
    return common.emit(args, response, lambda r: day_text(r.day, args.scale))


def cmd_days_show(args: argparse.Namespace) -> int:
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = stub.GetAccountingDay(day_pb.GetAccountingDayRequest(accounting_date=args.date))
    return common.emit(args, response, lambda r: day_text(r.day, args.scale))


def cmd_days_list(args: argparse.Namespace) -> int:
    request = day_pb.ListAccountingDaysRequest(page_size=args.page_size or 0, page_token=args.page_token or "")
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = common.pages(stub.ListAccountingDays, request, "days", args.all)
    return common.emit(args, response, lambda r: days_table(r.days, args.scale))


def cmd_days_balances(args: argparse.Namespace) -> int:
    request = day_pb.ListClosingBalancesRequest(accounting_date=args.date, page_size=args.page_size or 0,
                                                page_token=args.page_token or "")
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = common.pages(stub.ListClosingBalances, request, "balances", args.all)
    return common.emit(args, response, lambda r: balances_table(r.balances, args.scale))


def statements_table(statements, scale: int | None) -> str:
    if not statements:
        return "no issued statements (a statement is issued when its cycle's last day is closed)"
    amounts = ["opening", "debits", "credits", "closing"]
    rows = [[s.start_date, s.end_date, *(cell for value in (s.opening_balance, s.debit_total, s.credit_total,
                                                            s.closing_balance) for cell in _amounts(value, scale)),
             s.entry_count] for s in statements]
    columns = ["from", "to", *(c for name in amounts for c in _columns(name, scale)), "entries"]
    return fmt.format_table(columns, rows, numeric=[c for c in columns if c not in ("from", "to")])


def statement_text(response: day_pb.GetStatementResponse, scale: int | None) -> str:
    state = "issued" if response.statement.issued else "so far: the cycle's last day is not closed yet"
    return f"{state}\n" + statements_table([response.statement], scale) + "\n\n" + (
        fmt.entries_table(response.entries, scale) if response.entries else "no entries in this cycle")


def cmd_statements_list(args: argparse.Namespace) -> int:
    request = day_pb.ListStatementsRequest(account=args.account, page_size=args.page_size or 0,
                                           page_token=args.page_token or "")
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = common.pages(stub.ListStatements, request, "statements", args.all)
    return common.emit(args, response, lambda r: statements_table(r.statements, args.scale))


def cmd_statements_show(args: argparse.Namespace) -> int:
    request = day_pb.GetStatementRequest(account=args.account, date=args.date, page_size=args.page_size or 0,
                                         page_token=args.page_token or "")
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = common.pages(stub.GetStatement, request, "entries", args.all)
    return common.emit(args, response, lambda r: statement_text(r, args.scale))


def summaries_text(summaries, scale: int | None) -> str:
    if not summaries:
        return "no summary vouchers (no summarized flow posted that day)"
    parts = []
    for s in summaries:
        rows = [[ln.line_no, ln.account_code, fmt.enum_label(types_pb2.Side, ln.side), *_amounts(ln.amount, scale),
                 ln.line_count] for ln in s.lines]
        columns = ["line", "account_code", "side", *_columns("amount", scale), "detail_lines"]
        parts.append(f"{s.id}: {s.voucher_count} detail vouchers\n" + fmt.format_table(
            columns, rows, numeric=["line", *_columns("amount", scale), "detail_lines"]))
    return "\n\n".join(parts)


def cmd_days_summaries(args: argparse.Namespace) -> int:
    request = day_pb.ListSummariesRequest(accounting_date=args.date, page_size=args.page_size or 0,
                                          page_token=args.page_token or "")
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = common.pages(stub.ListSummaries, request, "summaries", args.all)
    return common.emit(args, response, lambda r: summaries_text(r.summaries, args.scale))


def cmd_days_detail(args: argparse.Namespace) -> int:
    request = day_pb.ListSummaryDetailRequest(accounting_date=args.date, flow_type=args.flow, currency=args.currency,
                                              page_size=args.page_size or 0, page_token=args.page_token or "")
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = common.pages(stub.ListSummaryDetail, request, "vouchers", args.all)
    return common.emit(args, response, lambda r: fmt.vouchers_table(r.vouchers, args.scale))


EXPORT_COLUMNS = ("accounting_date", "kind", "voucher_id", "flow_type", "line_no", "account_code", "account_id",
                  "side", "amount", "currency", "line_count", "memo")


def export_record(row: day_pb.LedgerExportRow) -> dict[str, object]:
    """One export row as finance imports it: integers as integers, enums as lower-case words."""
    return {"accounting_date": row.accounting_date,
            "kind": day_pb.LedgerRowKind.Name(row.kind).removeprefix("LEDGER_ROW_KIND_").lower(),
            "voucher_id": row.voucher_id, "flow_type": row.flow_type, "line_no": row.line_no,
            "account_code": row.account_code, "account_id": row.account_id,
            "side": fmt.enum_label(types_pb2.Side, row.side), "amount": row.amount, "currency": row.currency,
            "line_count": row.line_count, "memo": row.memo}


def cmd_days_export(args: argparse.Namespace) -> int:
    """Every page of the export, written as CSV (with a header) or JSON lines to --output or stdout."""
    request = day_pb.ExportGeneralLedgerRequest(accounting_date=args.date, page_size=EXPORT_PAGE_SIZE)
    with common.stub(args, day_grpc.DayServiceStub) as stub:
        response = common.pages(stub.ExportGeneralLedger, request, "rows", True)
    records = [export_record(r) for r in response.rows]
    buffer = io.StringIO()
    if args.format == "csv":
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    else:
        buffer.writelines(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            out.write(buffer.getvalue())
        print(f"{len(records)} rows of {args.date} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


EXPORT_PAGE_SIZE = 500


def add_statements_parser(commands, client: argparse.ArgumentParser) -> None:
    """Registers `tally statements list|show`."""
    statements = commands.add_parser("statements", help="an account's statement cycles")
    verbs = statements.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", parents=[client], help="issued statements, newest first",
                               description="Cycles run from the account's statement day (metadata statement_day, "
                                           "1..28, default 1) to the day before it a month later; a statement is "
                                           "issued once its cycle's last day is closed.")
    common.account_arg(listing)
    common.paging_options(listing)
    listing.set_defaults(func=cmd_statements_list)
    show = verbs.add_parser("show", parents=[client], help="one statement and its entries")
    common.account_arg(show)
    show.add_argument("date", type=common.arg(fmt.parse_iso_date), metavar="YYYY-MM-DD",
                      help="any accounting date in the cycle")
    common.paging_options(show)
    show.set_defaults(func=cmd_statements_show)


def add_days_parser(commands, client: argparse.ArgumentParser) -> None:
    """Registers `tally days close|show|list|balances` on the `tally` command's subparsers."""
    days = commands.add_parser("days", help="close accounting days and read what their close stored")
    verbs = days.add_subparsers(dest="verb", required=True, metavar="VERB")
    date_arg = {"type": common.arg(fmt.parse_iso_date), "metavar": "YYYY-MM-DD"}

    close = verbs.add_parser("close", parents=[client], help="close a day whose cut-off has passed",
                             description="Closes the day (and every open day before it): stores each moved "
                                         "account's closing balance, the day's trial balance and flow totals, "
                                         "and emits day.closed. Closing a closed day shows what was stored. "
                                         "Needs an operator or admin key.")
    close.add_argument("date", help="the accounting day", **date_arg)
    close.add_argument("--early", action="store_true",
                       help="close the current day now, before its cut-off: postings then get the next date")
    common.request_id_option(close)
    close.set_defaults(func=cmd_days_close)

    show = verbs.add_parser("show", parents=[client], help="a day's state and what its close stored")
    show.add_argument("date", help="the accounting day", **date_arg)
    show.set_defaults(func=cmd_days_show)

    listing = verbs.add_parser("list", parents=[client], help="closed days, newest first")
    common.paging_options(listing)
    listing.set_defaults(func=cmd_days_list)

    balances = verbs.add_parser("balances", parents=[client], help="a closed day's closing balances")
    balances.add_argument("date", help="the accounting day", **date_arg)
    common.paging_options(balances)
    balances.set_defaults(func=cmd_days_balances)
    summaries = verbs.add_parser("summaries", parents=[client], help="a closed day's summary vouchers")
    summaries.add_argument("date", help="the accounting day", **date_arg)
    common.paging_options(summaries)
    summaries.set_defaults(func=cmd_days_summaries)

    detail = verbs.add_parser("detail", parents=[client], help="the detail vouchers of one summary")
    detail.add_argument("date", help="the accounting day", **date_arg)
    detail.add_argument("flow", metavar="FLOW", help="the summarized flow type")
    detail.add_argument("currency", metavar="CURRENCY")
    common.paging_options(detail)
    detail.set_defaults(func=cmd_days_detail)

    export = verbs.add_parser("export", parents=[client], help="a closed day's general-ledger export",
                              description="The summarized journal of a closed day, as finance imports it: the "
                                          "summary lines of summarized flows, then every line of the other flows' "
                                          "vouchers. Amounts are integers of atomic units.")
    export.add_argument("date", help="the accounting day", **date_arg)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="default %(default)s")
    export.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    export.set_defaults(func=cmd_days_export)
    add_statements_parser(commands, client)
