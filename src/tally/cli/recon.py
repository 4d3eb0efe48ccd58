"""`tally recon`: import a counterparty's statement, show its reconciliation, resolve an open item.

    tally recon import ACCOUNT FILE [--format csv|camt053] [--statement-id ID] [--closing-balance N]
                       [--layout NAME] [--column FIELD=HEADER ...] [--date-window-days N]
    tally recon show ACCOUNT STATEMENT_ID [--items [--state matched|difference|unmatched_ours|unmatched_theirs]]
    tally recon resolve ITEM_ID --as short-fall|long-fall|supplementary [--party P] [--memo TEXT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tally.cli import common
from tally.cli import format as fmt
from tally.service.settlement.statements import STATEMENT_SIZE_BYTES_MAX
from tally.v1 import settlement_service_pb2 as pb
from tally.v1 import settlement_service_pb2_grpc as pb_grpc

FORMATS = {"csv": pb.STATEMENT_FORMAT_CSV, "camt053": pb.STATEMENT_FORMAT_CAMT053}
CSV_FIELDS = ("reference", "amount", "value_date", "line_id", "description")
RESOLUTIONS = {"short-fall": pb.RESOLUTION_SHORT_FALL, "long-fall": pb.RESOLUTION_LONG_FALL,
               "supplementary": pb.RESOLUTION_SUPPLEMENTARY}
STATES = fmt.enum_labels(pb.ReconciliationItemState)



def parse_column(text: str) -> tuple[str, str]:
    field, sep, header = text.partition("=")
    if not sep or field not in CSV_FIELDS or not header:
        raise ValueError(f"expected FIELD=HEADER with FIELD one of {', '.join(CSV_FIELDS)}")
    return field, header


def read_statement(path: str) -> bytes:
    """The file's bytes, refused here already when it is larger than the server accepts."""
    file = Path(path)
    size = file.stat().st_size
    if size > STATEMENT_SIZE_BYTES_MAX:
        raise ValueError(f"{path} is {size} bytes; a statement is at most {STATEMENT_SIZE_BYTES_MAX}")
    return file.read_bytes()


# ---------------------------------------------------------------------------------------------- text


def statement_fields(s: pb.ImportedStatement, scale: int | None) -> list[tuple[str, object]]:
    closing = fmt.amount_text(s.closing_balance, scale) if s.HasField("closing_balance") else "(not stated)"
    return [("statement", s.statement_id), ("account", s.account),
            ("format", fmt.enum_label(pb.StatementFormat, s.format)), ("period", f"{s.start_date} .. {s.end_date}"),
            ("lines", s.line_count), ("closing_balance", closing),
            ("ledger_balance", fmt.amount_text(s.ledger_balance, scale)),
            ("imported", fmt.timestamp_text(s.import_time))]


def counts_table(counts, scale: int | None) -> str:
    rows = [[fmt.enum_label(pb.ReconciliationItemState, c.state), c.items, fmt.amount_text(c.ours, scale),
             fmt.amount_text(c.theirs, scale), c.open_items] for c in counts]
    return fmt.format_table(["state", "items", "ours", "theirs", "open"], rows, numeric=["items", "open"])


def items_table(items, scale: int | None) -> str:
    rows = [[i.id, fmt.enum_label(pb.ReconciliationItemState, i.state), i.rule,
             ",".join(sorted({ln.reference for ln in i.lines if ln.reference})), len(i.entries),
             ",".join(str(ln.line_no) for ln in i.lines), fmt.amount_text(i.ours, scale),
             fmt.amount_text(i.theirs, scale), fmt.amount_text(i.open_amount, scale),
             fmt.enum_label(pb.Resolution, i.resolution) if i.resolution else "", i.resolution_voucher_id]
            for i in items]
    return fmt.format_table(["item", "state", "rule", "reference", "entries", "lines", "ours", "theirs", "open",
                             "resolution", "voucher"], rows, numeric=["entries"])


def proof_text(p: pb.FundProof, scale: int | None) -> str:
    verdict = "proven" if p.proven else "NOT proven"
    return (f"fund proof ({verdict}): ledger {fmt.amount_text(p.ledger_balance, scale)} + resolutions "
            f"{fmt.amount_text(p.resolutions, scale)} = closing {fmt.amount_text(p.closing_balance, scale)} + open "
            f"items {fmt.amount_text(p.open_items, scale)}")


def report_text(r: pb.GetReconciliationResponse, scale: int | None) -> str:
    parts = [fmt.format_fields(statement_fields(r.statement, scale)), counts_table(r.counts, scale)]
    if r.HasField("fund_proof"):
        parts.append(proof_text(r.fund_proof, scale))
    parts.append("open items:\n" + (items_table(r.open_items, scale) if r.open_items else "(none)"))
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------- commands


def cmd_recon_import(args: argparse.Namespace) -> int:
    try:
        content = read_statement(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return common.EXIT_UNREACHABLE  # 2: bad arguments, like argparse's
    request = pb.ImportStatementRequest(
        request_id=common.request_id(args), account=args.account, format=FORMATS[args.format or _guess(args.file)],
        statement_file=content, statement_id=args.statement_id or "", csv_layout=args.layout or "",
        csv_columns=pb.CsvColumns(**{f"{field}_column": name for field, name in args.column or ()}))
    if args.closing_balance is not None:
        request.closing_balance = args.closing_balance
    if args.date_window_days is not None:
        request.date_window_days = args.date_window_days
    # The server parses and matches the whole file in one call: the bar says what is being waited for.
    with common.stub(args, pb_grpc.SettlementServiceStub) as stub, \
            common.progress(desc=f"importing {args.file}", unit="B", total=len(content)) as bar:
        response = stub.ImportStatement(request)
        bar.update(len(content))
    return common.emit(args, response, lambda r: fmt.format_fields(
        statement_fields(r.statement, args.scale)) + "\n\n" + counts_table(r.counts, args.scale))


def _guess(path: str) -> str:
    return "camt053" if path.lower().endswith(".xml") else "csv"


def cmd_recon_show(args: argparse.Namespace) -> int:
    with common.stub(args, pb_grpc.SettlementServiceStub) as stub:
        if args.items:
            request = pb.ListReconciliationItemsRequest(
                account=args.account, statement_id=args.statement_id, page_size=args.page_size or 0,
                page_token=args.page_token or "",
                state=fmt.enum_value(pb.ReconciliationItemState, args.state) if args.state else 0)
            response = common.pages(stub.ListReconciliationItems, request, "items", args.all)
            return common.emit(args, response, lambda r: items_table(r.items, args.scale))
        request = pb.GetReconciliationRequest(account=args.account, statement_id=args.statement_id)
        return common.emit(args, stub.GetReconciliation(request), lambda r: report_text(r, args.scale))


def cmd_recon_resolve(args: argparse.Namespace) -> int:
    request = pb.ResolveItemRequest(request_id=common.request_id(args), item_id=args.item_id,
                                    resolution=RESOLUTIONS[args.resolution], party=args.party or "",
                                    memo=args.memo or "")
    with common.stub(args, pb_grpc.SettlementServiceStub) as stub:
        return common.emit(args, stub.ResolveItem(request), lambda r: items_table([r.item], args.scale)
                         + "\nvouchers: " + ", ".join(r.voucher_ids))


def add_recon_parser(commands, client: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Registers `tally recon VERB` on the `tally` command's subparsers."""
    recon = commands.add_parser("recon", help="reconcile a channel's or bank's statement against an account")
    verbs = recon.add_subparsers(dest="verb", required=True, metavar="VERB")

    imp = verbs.add_parser("import", parents=[client], help="import a statement file and match it")
    common.account_arg(imp, help="the reconciled account, e.g. channel_clearing:visa:USD")
    imp.add_argument("file", metavar="FILE", help="CSV or camt.053 XML")
    imp.add_argument("--format", choices=sorted(FORMATS), help="default: camt053 for *.xml, else csv")
    imp.add_argument("--statement-id", metavar="ID", help="CSV: the statement's id (camt.053 carries its own)")
    imp.add_argument("--closing-balance", type=common.arg(fmt.parse_amount, minimum=-(2**63)), metavar="N",
                     help="CSV: the closing balance the counterparty states, in atomic units")
    imp.add_argument("--layout", metavar="NAME", help="CSV: a statement layout of the server's rule set "
                                                      "([statements.NAME]); --column overrides it")
    imp.add_argument("--column", type=common.arg(parse_column), nargs="+", action="extend", metavar="FIELD=HEADER",
                     help=f"CSV column names: {', '.join(CSV_FIELDS)} (default reference, amount, date, id, "
                          "description)")
    imp.add_argument("--date-window-days", type=common.arg(fmt.parse_amount, minimum=0), metavar="N",
                     help="lines and entries this many days apart may match by amount (default 3)")
    common.request_id_option(imp)
    imp.set_defaults(func=cmd_recon_import)

    show = verbs.add_parser("show", parents=[client], help="the reconciliation report of a statement")
    common.account_arg(show, help="the reconciled account")
    show.add_argument("statement_id", metavar="STATEMENT_ID")
    show.add_argument("--items", action="store_true", help="list the items instead of the report")
    show.add_argument("--state", choices=STATES, help="with --items: only items of this state")
    show.add_argument("--page-size", type=common.arg(fmt.parse_amount), metavar="N")
    show.add_argument("--page-token")
    show.add_argument("--all", action="store_true", help="with --items: every page")
    show.set_defaults(func=cmd_recon_show)

    resolve = verbs.add_parser("resolve", parents=[client], help="resolve an open item by posting a voucher")
    resolve.add_argument("item_id", metavar="ITEM_ID")
    resolve.add_argument("--as", dest="resolution", required=True, choices=sorted(RESOLUTIONS))
    resolve.add_argument("--party", help="supplementary: the merchant (channel) or consumer (processor)")
    resolve.add_argument("--memo")
    common.request_id_option(resolve)
    resolve.set_defaults(func=cmd_recon_resolve)
    return recon
