"""The books as a whole: `tally rules check FILE` (offline), `tally rules show`, `tally trial-balance` and
`tally verify`.

    tally rules check FILE      problems with their locations (exit 1), or a one-line summary (exit 0)
    tally rules show            the server's rule set: one row per voucher line, with its amount expression
    tally trial-balance         debit and credit totals per currency; BALANCED or NOT BALANCED
    tally verify                the tenant's voucher hash chain recomputed: intact, or the first broken
                                voucher and what is wrong with it (exit 1)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable

from tally import cli_format as fmt
from tally.v1 import bookkeeping_service_pb2 as book_pb
from tally.v1 import bookkeeping_service_pb2_grpc as book_grpc

BALANCED = "BALANCED"
NOT_BALANCED = "NOT BALANCED"
INTACT = "intact"
BROKEN = "BROKEN"


def _cli():
    """tally.cli, imported when first needed: it imports this module to register the verbs."""
    from tally import cli

    return cli


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
    return _cli().EXIT_REFUSED if problems else 0


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
    cli = _cli()
    with cli._stub(args, book_grpc.BookkeepingServiceStub) as stub:
        response = stub.GetRuleSet(book_pb.GetRuleSetRequest())
    return cli._emit(args, response, rule_set_text)


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
            cells += [value] if scale is None else [value, fmt.format_decimal(value, scale)]
        rows.append([total.currency, *cells, total.account_count])
    table = fmt.format_table(columns, rows, numeric=numeric) if rows else "no accounts"
    off = [t.currency for t in response.totals if t.difference != 0]
    verdict = BALANCED if response.balanced and not off else f"{NOT_BALANCED}: {', '.join(off) or 'see the server'}"
    return f"{table}\n\n{verdict}"


def cmd_trial_balance(args: argparse.Namespace) -> int:
    cli = _cli()
    with cli._stub(args, book_grpc.BookkeepingServiceStub) as stub:
        response = stub.GetTrialBalance(book_pb.GetTrialBalanceRequest())
    status = cli._emit(args, response, lambda r: trial_balance_text(r, args.scale))
    if args.check and not response.balanced:
        return cli.EXIT_REFUSED
    return status


# ---------------------------------------------------------------------------------------------- verify


def chain_text(response: book_pb.VerifyChainResponse) -> str:
    checked = f"{response.vouchers_checked} voucher{'' if response.vouchers_checked == 1 else 's'} checked"
    if response.intact:
        head = f", head hash {response.head_hash}" if response.head_hash else ""
        return f"{INTACT}: {checked}{head}"
    return "\n".join([
        f"{BROKEN}: {checked}; the first voucher that does not check out:",
        fmt.format_fields([("voucher", response.first_broken_voucher_id),
                           ("sequence", response.first_broken_sequence or ""),
                           ("problem", response.problem or "not given"),
                           ("head_hash", response.head_hash)])])


def cmd_verify(args: argparse.Namespace) -> int:
    cli = _cli()
    with cli._stub(args, book_grpc.BookkeepingServiceStub) as stub:
        response = stub.VerifyChain(book_pb.VerifyChainRequest())
    cli._emit(args, response, chain_text)
    return 0 if response.intact else cli.EXIT_REFUSED


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
    trial.set_defaults(func=cmd_trial_balance)

    verify = commands.add_parser("verify", parents=[client], help="recompute the voucher hash chain",
                                 description="Asks the server to recompute the tenant's voucher hash chain (each "
                                             "voucher's content hash, its link to the previous voucher, the "
                                             "sequence) and prints intact, or the first broken voucher and what "
                                             "is wrong with it (exit 1). Needs an operator or admin key.")
    verify.set_defaults(func=cmd_verify)
