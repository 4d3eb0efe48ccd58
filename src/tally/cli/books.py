"""The books as a whole: `tally rules check FILE` (offline), `tally rules show`, `tally trial-balance` and
`tally verify`.

    tally rules check FILE      problems with their locations (exit 1), or a one-line summary (exit 0)
    tally rules show            the server's rule set: one row per voucher line, with its amount expression
    tally trial-balance         debit and credit totals per currency; BALANCED or NOT BALANCED
    tally verify [--full]       the ledger audit: the voucher hash chain recomputed and every balance proven
                                from the journal since the last checkpoint (--full: from the first voucher);
                                intact, or each finding with what was expected and found (exit 1)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable

from tally.cli import common
from tally.cli import format as fmt
from tally.v1 import bookkeeping_service_pb2 as book_pb
from tally.v1 import bookkeeping_service_pb2_grpc as book_grpc

BALANCED = "BALANCED"
NOT_BALANCED = "NOT BALANCED"
INTACT = "intact"
BROKEN = "BROKEN"
INCONSISTENT = "INCONSISTENT"



# ---------------------------------------------------------------------------------------------- rules check


def check_rules_file(path: str) -> tuple[list[str], str | None, int]:
    """(problems, version, rule count) of a rule-set file; version None when it is invalid."""
    from tally.rules import check_file, load_rule_set

    problems = check_file(path)
    if problems:
        return problems, None, 0
    rule_set = load_rule_set(path)
    return [], rule_set.version, len(rule_set.rules)


def cmd_rules_check(args: argparse.Namespace) -> int:
    problems, version, count = check_rules_file(args.file)
    if args.json:
        print(json.dumps({"file": args.file, "valid": not problems, "problems": problems, "version": version or "",
                          "rules": count}, indent=2, ensure_ascii=False))
    elif problems:
        for problem in problems:
            print(problem)
        print(f"{args.file}: invalid, {len(problems)} problem(s)", file=sys.stderr)
    else:
        print(f"{args.file}: valid, version {version}, {count} rule{'' if count == 1 else 's'}")
    return common.EXIT_REFUSED if problems else 0


# ---------------------------------------------------------------------------------------------- rules show


def _when_text(when) -> str:
    empty = '""'  # a tag that must be absent
    return " ".join(f"{key}={when[key] or empty}" for key in sorted(when))


def rules_table(rules: Iterable[book_pb.Rule]) -> str:
    """One row per voucher line (a rule without vouchers, such as a proportional reversal, gets one row);
    the rule's and the voucher's cells are shown on their first row only, the mode unless it is `vouchers`."""
    columns = ["rule", "flow", "when", "mode", "voucher", "side", "account", "amount", "if", "split"]
    rows: list[list[object]] = []
    for rule in rules:
        head = [rule.id, rule.flow, _when_text(rule.when), "" if rule.mode == "vouchers" else rule.mode]
        if not any(v.lines for v in rule.vouchers):
            rows.append([*head, "", "", "", "", "", ""])
            continue
        for voucher in rule.vouchers:
            for i, line in enumerate(voucher.lines):
                rows.append([*head, voucher.name if i == 0 else "", line.side, line.account, line.amount, line.when,
                             line.split])
                head = ["", "", "", ""]
    return fmt.format_table(columns, rows)


def rule_set_text(response: book_pb.GetRuleSetResponse) -> str:
    header = fmt.format_fields([("version", response.version), ("source", response.source),
                                ("flows", ", ".join(response.flow_types)), ("rules", len(response.rules))])
    guards = [f"  {rule.id}: {check}" for rule in response.rules for check in rule.requires]
    text = f"{header}\n\n{rules_table(response.rules)}"
    return text + ("\n\nrequires (checked before posting):\n" + "\n".join(guards) if guards else "")


def cmd_rules_show(args: argparse.Namespace) -> int:
    with common.stub(args, book_grpc.BookkeepingServiceStub) as stub:
        response = stub.GetRuleSet(book_pb.GetRuleSetRequest())
    return common.emit(args, response, rule_set_text)


# ---------------------------------------------------------------------------------------------- trial balance


def trial_balance_text(response: book_pb.GetTrialBalanceResponse, scale: int | None) -> str:
    amounts = ["debit_total", "credit_total", "difference"]
    columns = ["currency", *amounts, "accounts"]
    numeric = [*amounts, "accounts"]
    if scale is not None:
        for name in amounts:
            columns.insert(columns.index(name) + 1, f"{name}_dec")
        numeric += [f"{name}_dec" for name in amounts]
    rows = []
    for total in response.totals:
        cells = []
        for value in (total.debit_total, total.credit_total, total.difference):
            cells += fmt.amount_cells(value, scale, total.currency)
        rows.append([total.currency, *cells, total.account_count])
    table = fmt.format_table(columns, rows, numeric=numeric) if rows else "no accounts"
    off = [t.currency for t in response.totals if t.difference != 0]
    verdict = BALANCED if response.balanced and not off else f"{NOT_BALANCED}: {', '.join(off) or 'see the server'}"
    return f"{table}\n\n{verdict}"


def cmd_trial_balance(args: argparse.Namespace) -> int:
    with common.stub(args, book_grpc.BookkeepingServiceStub) as stub:
        request = book_pb.GetTrialBalanceRequest(subtree=args.subtree) if args.subtree else \
            book_pb.GetTrialBalanceRequest()
        response = stub.GetTrialBalance(request)
    status = common.emit(args, response, lambda r: trial_balance_text(r, args.scale))
    if args.check and not response.balanced:
        return common.EXIT_REFUSED
    return status


# ---------------------------------------------------------------------------------------------- verify


def chain_text(response: book_pb.VerifyChainResponse) -> str:
    checked = f"{response.vouchers_checked} voucher{'' if response.vouchers_checked == 1 else 's'} checked"
    head = f", head hash {response.head_hash}" if response.head_hash else ""
    if response.first_broken_voucher_id or response.problem:
        lines = [f"{BROKEN}: {checked}; the first voucher that does not check out:",
                 fmt.format_fields([("voucher", response.first_broken_voucher_id),
                                    ("sequence", response.first_broken_sequence or ""),
                                    ("problem", response.problem or "not given"),
                                    ("head_hash", response.head_hash)])]
    elif response.intact:
        lines = [f"{INTACT}: {checked}{head}"]
    else:
        lines = [f"{INCONSISTENT}: {checked}{head}; the hash chain is intact, the books are not:"]
    return "\n".join([*lines, *findings_lines(response), audit_summary(response)])


def findings_lines(response: book_pb.VerifyChainResponse) -> list[str]:
    lines = []
    for f in response.findings:
        kind = book_pb.AuditFindingKind.Name(f.kind).removeprefix("AUDIT_FINDING_KIND_")
        where = " ".join(part for part in (f"account {f.account_id}" if f.account_id else "",
                                           f"voucher {f.voucher_id}" if f.voucher_id else "") if part)
        lines.append(f"  {kind}{' ' + where if where else ''}: expected {f.expected or '-'}, found "
                     f"{f.found or '-'} ({f.message})")
    if response.findings_omitted:
        lines.append(f"  ... and {response.findings_omitted} more")
    if response.marked_inconsistent_account_ids:
        lines.append("marked inconsistent (postings refused until an operator sets them active): "
                     + ", ".join(response.marked_inconsistent_account_ids))
    return lines


def audit_summary(response: book_pb.VerifyChainResponse) -> str:
    run = "full" if response.full else "routine"
    return (f"audit: {run}, vouchers {response.from_sequence + 1}..{response.through_sequence}: "
            f"{response.vouchers_read} vouchers, {response.lines_read} lines, {response.events_checked} events, "
            f"{response.audit_rows_read} audit rows, {response.accounts_checked} balances read in "
            f"{response.duration_ms} ms; checkpoint {'saved' if response.checkpoint_saved else 'unchanged'}")


PROGRESS_INTERVAL_S = 1.0


def cmd_verify(args: argparse.Namespace) -> int:
    """Runs the audit as a stream: its progress (a bar on a terminal), the result last. Ctrl-C or
    --deadline cancels the call, and the server stops the run."""
    channel = common.connect(args)
    try:
        stub = book_grpc.BookkeepingServiceStub(channel)
        responses = stub.AuditLedger(book_pb.AuditLedgerRequest(full=args.full), metadata=common.call_metadata(args),
                                     timeout=args.deadline)
        response = _audit_result(args, responses)
    finally:
        channel.close()
    if response is None:
        print("error: the audit ended without a result", file=sys.stderr)
        return common.EXIT_REFUSED
    common.emit(args, response, chain_text)
    return 0 if response.intact else common.EXIT_REFUSED


def _audit_result(args: argparse.Namespace, responses) -> book_pb.VerifyChainResponse | None:
    """The audit's result; meanwhile a progress bar of the vouchers verified when stdout is a terminal, else a
    line on stderr about once a second (not with --json)."""
    response, shown = None, 0.0
    with common.progress(desc="verifying", unit="vouchers") as bar:
        for item in responses:
            if item.HasField("result"):
                response = item.result
                continue
            p = item.progress
            if not bar.disable:
                bar.total = p.last_sequence
                bar.update(p.through_sequence - bar.n)
            elif not args.json and time.monotonic() - shown >= PROGRESS_INTERVAL_S:
                shown = time.monotonic()
                print(f"verified {p.vouchers_read} vouchers, through {p.through_sequence} of {p.last_sequence}",
                      file=sys.stderr)
    return response


# ---------------------------------------------------------------------------------------------- parser


def add_books_parsers(commands, client: argparse.ArgumentParser) -> None:
    """Registers `tally rules check|show`, `tally trial-balance` and `tally verify` on the `tally` command's
    subparsers."""
    rules = commands.add_parser("rules", help="check a rule-set file, or show the server's rule set")
    verbs = rules.add_subparsers(dest="verb", required=True, metavar="VERB")

    check = verbs.add_parser("check", help="validate a rule-set file (offline; no server needed)",
                             description="Loads a rule-set TOML file as the server would and prints each problem "
                                         "with its location (exit 1), or a one-line summary (exit 0).")
    check.add_argument("file", metavar="FILE", help="a rule-set TOML file")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=cmd_rules_check)

    show = verbs.add_parser("show", parents=[client], help="the rule set the server posts with")
    show.set_defaults(func=cmd_rules_show)

    trial = commands.add_parser("trial-balance", parents=[client], help="debit and credit totals per currency",
                                description="Sums every account's balance per currency: the debit and credit "
                                            "totals must be equal (BALANCED).")
    trial.add_argument("--check", action="store_true", help="exit 1 when the books are NOT BALANCED")
    trial.add_argument("--subtree", type=common.arg(fmt.account_ref), metavar="CODE_OR_ID",
                       help="only this account and the accounts under it")
    trial.set_defaults(func=cmd_trial_balance)

    verify = commands.add_parser("verify", parents=[client], help="the ledger audit: hash chain and balances",
                                 description="Asks the server to audit the tenant's ledger: the voucher hash chain "
                                             "(each voucher's content hash, its link, the sequence), every balance "
                                             "proven from the journal (sum of lines, running balances, entry "
                                             "numbers, previous-day balance, locked against active holds), the "
                                             "ledger head, event sequences and the audit log's hash chain. A "
                                             "routine run reads what was written since the last checkpoint. "
                                             "Prints intact, or every finding with what was expected and found "
                                             "(exit 1); accounts found inconsistent are marked so and refuse "
                                             "postings. Needs an operator or admin key.")
    verify.add_argument("--full", action="store_true", help="re-verify from the first voucher, not the checkpoint")
    verify.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                        help="give up (and stop the server's run) after this long; default: wait until done, "
                             "Ctrl-C stops it")
    verify.set_defaults(func=cmd_verify)
