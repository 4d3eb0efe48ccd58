"""The CLI for people, without a server: amounts in currency units (and back to counts after the invocation),
--quiet's ids, the PERMISSION_DENIED hints told apart by reason, progress bars only on a terminal, and the
package's imports (the shared helpers import no verb module; no cycle)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import grpc
import pytest
from tally_client import TallyError

from tally import cli
from tally.cli import common
from tally.cli import format as fmt
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import types_pb2

PACKAGE = Path(cli.__file__).parent
SHARED = {"common", "format", "tls"}
KEY = "tly_0123456789abcdef_" + "a" * 43


def test_amounts_in_units_with_the_code_and_counts_again_afterwards() -> None:
    scales = fmt.currency_scales(None)
    assert scales == {"USD": 6, "EUR": 6, "GBP": 6, "JPY": 3}
    with fmt.use_amounts(atomic=False, scales={**scales, "XTS": 0}):
        assert fmt.amount_text(12_345_678, None, "USD") == "12.345678 USD"
        assert fmt.amount_text(-5, None, "USD") == "-0.000005 USD"
        assert fmt.amount_text(1_500, None, "JPY") == "1.500 JPY"
        assert fmt.amount_text(7, None, "XTS") == "7 XTS"
        assert fmt.amount_text(12_345_678, None, "ABC") == "12345678? ABC"  # an unknown scale is not guessed
        assert fmt.amount_text(12_345_678, 6, "USD") == "12345678 (12.345678)"  # --scale keeps its layout
        assert fmt.amount_cells(1_234_567, None, "USD") == ["1.234567"]
    assert fmt.amount_text(12_345_678, None, "USD") == "12345678"  # --atomic, and outside an invocation
    with fmt.use_amounts(atomic=True, scales=scales):
        assert fmt.amount_text(12_345_678, None, "USD") == "12345678"


def test_voucher_lines_name_accounts_by_code_for_people() -> None:
    voucher = types_pb2.Voucher(id="v1", lines=[
        types_pb2.VoucherLine(line_no=1, account_code="cash", account_id="id-cash", side=types_pb2.SIDE_DEBIT,
                              amount=2_500_000, currency="USD"),
        types_pb2.VoucherLine(line_no=2, account_code="shop", account_id="id-shop", side=types_pb2.SIDE_CREDIT,
                              amount=2_500_000, currency="USD")])
    with fmt.use_amounts(atomic=False, scales={"USD": 6}):
        table = fmt.voucher_lines_table(voucher.lines, None)
    assert table.splitlines()[2].split() == ["1", "cash", "debit", "2.500000", "USD"] and "id-cash" not in table
    assert "id-cash" in fmt.voucher_lines_table(voucher.lines, None)  # atomic: as before


def test_quiet_prints_the_ids_alone(capsys) -> None:
    args = cli.build_parser().parse_args(["transfer", "a", "b", "5", "--currency", "USD", "-q"])
    assert args.quiet and common.request_id(args) and capsys.readouterr().err == ""  # no request-id line
    posted = post_pb.PostResponse(vouchers=[types_pb2.Voucher(id="v1"), types_pb2.Voucher(id="v2")])
    assert common.emit(args, posted, lambda r: "table") == 0
    assert capsys.readouterr().out == "v1\nv2\n"
    common.emit(args, acc_pb.ListAccountsResponse(), lambda r: "no accounts")  # nothing to name: the text
    assert capsys.readouterr().out == "no accounts\n"


@pytest.mark.parametrize(("reason", "said", "not_said"), [
    ("ROLE_NOT_ALLOWED", "use a key with a higher role", "is visible"),
    ("VOUCHER_NOT_ACCESSIBLE", "no voucher with that id is visible to the key's tenant", "use a key with a higher"),
    ("HOLD_NOT_ACCESSIBLE", "no hold with that id is visible", "use a key with a higher"),
    ("METHOD_NOT_ALLOWED", "error: PERMISSION_DENIED METHOD_NOT_ALLOWED: denied", "use a key with a higher"),
])
def test_permission_denied_is_explained_by_its_reason(capsys, reason: str, said: str, not_said: str) -> None:
    args = cli.build_parser().parse_args(["vouchers", "get", "x", "--api-key", KEY])
    cli.credential(args)
    error = TallyError(grpc.StatusCode.PERMISSION_DENIED, "denied", reason, {"voucher_id": "x"})
    assert cli.report_rpc_error(error, args) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert said in err and not_said not in err and KEY not in err and "  voucher_id: x" in err


def _two_pages():
    calls = []

    def call(request):
        calls.append(request.page_token)
        entries = [types_pb2.Entry(entry_number=n) for n in (range(1, 4) if not request.page_token else (4,))]
        return acc_pb.ListEntriesResponse(entries=entries, next_page_token="" if request.page_token else "p2")

    return call, calls


@pytest.mark.parametrize("terminal", [True, False])
def test_a_progress_bar_only_when_stdout_is_a_terminal(monkeypatch, capsys, terminal: bool) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    call, calls = _two_pages()
    merged = common.pages(call, acc_pb.ListEntriesRequest(), "entries", True)
    assert [e.entry_number for e in merged.entries] == [1, 2, 3, 4] and calls == ["", "p2"]
    err = capsys.readouterr().err
    assert ("reading entries:" in err and " entries/s]" in err) if terminal else err == ""


def _tally_cli_imports(path: Path) -> set[str]:
    """The modules of this package that `path` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "tally.cli":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tally.cli."):
            found.add(node.module.removeprefix("tally.cli."))
        elif isinstance(node, ast.ImportFrom) and node.module == "tally":
            found |= {"<package>" for alias in node.names if alias.name == "cli"}
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = {path.stem: _tally_cli_imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    assert {"common", "format", "main", "ledger", "holds"} <= set(graph)
    for name in SHARED:
        assert graph[name] <= SHARED - {name}, f"{name} imports {graph[name]}: a verb module or the package"
    for name, imported in graph.items():
        assert "<package>" not in imported and ("main" not in imported or name == "__main__"), (name, imported)
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in seen:
            return
        for imported in graph.get(name, ()):
            visit(imported, (*path, name))
        seen.add(name)

    for name in graph:
        visit(name, ())
