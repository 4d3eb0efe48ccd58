"""Statement reconciliation through the real server and the real gRPC wire, on SQLite and PostgreSQL:
every matching shape (reference one-to-one, one-to-many, many-to-one, amount and date window), idempotent
import, refused files (malformed, oversized) that import nothing, the fund-layer proof, and resolution into
short-fall, long-fall and supplementary vouchers linked to their items."""

from __future__ import annotations

import datetime as dt
import json

import grpc
import pytest

from tally.v1 import flows_pb2 as f
from tally.v1 import settlement_service_pb2 as pb
from tally.v1 import settlement_service_pb2_grpc as pb_grpc
from tests.e2e.conftest import Server, error_info, ref
from tests.e2e.test_e2e_flows import Books, lines

USD = "USD"
CLEARING = "channel_clearing:visa:USD"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
S = pb  # enum values
MATCHED, DIFFERENCE = S.RECONCILIATION_ITEM_STATE_MATCHED, S.RECONCILIATION_ITEM_STATE_DIFFERENCE
OURS, THEIRS = S.RECONCILIATION_ITEM_STATE_UNMATCHED_OURS, S.RECONCILIATION_ITEM_STATE_UNMATCHED_THEIRS


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


class Recon(Books):
    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.settle = pb_grpc.SettlementServiceStub(server.channel())

    def acquire(self, rid: str, amount: int, **metadata: str) -> None:
        self.stub.Post(_post(rid, amount, metadata), metadata=self.md)

    def import_csv(self, statement_id: str, text: str, closing: int | None = None, rid: str = "",
                   **columns: str) -> pb.ImportStatementResponse:
        request = pb.ImportStatementRequest(
            request_id=rid or f"imp-{statement_id}", account=ref(CLEARING), format=pb.STATEMENT_FORMAT_CSV,
            statement_file=text.encode(), statement_id=statement_id,
            csv_columns=pb.CsvColumns(**{f"{field}_column": name for field, name in columns.items()}))
        if closing is not None:
            request.closing_balance = closing
        return self.settle.ImportStatement(request, metadata=self.md)

    def report(self, statement_id: str) -> pb.GetReconciliationResponse:
        request = pb.GetReconciliationRequest(account=ref(CLEARING), statement_id=statement_id)
        return self.settle.GetReconciliation(request, metadata=self.md)

    def items(self, statement_id: str, state: int = 0) -> list[pb.ReconciliationItem]:
        found, token = [], ""
        while True:
            page = self.settle.ListReconciliationItems(pb.ListReconciliationItemsRequest(
                account=ref(CLEARING), statement_id=statement_id, state=state, page_size=2, page_token=token),
                metadata=self.md)
            found += page.items
            token = page.next_page_token
            if not token:
                return found

    def resolve(self, rid: str, item_id: str, resolution: int, party: str = "") -> pb.ResolveItemResponse:
        return self.settle.ResolveItem(pb.ResolveItemRequest(request_id=rid, item_id=item_id, resolution=resolution,
                                                             party=party), metadata=self.md)


def _post(rid: str, amount: int, metadata: dict[str, str]):
    from tally.v1 import accounting_service_pb2 as post_pb

    return post_pb.PostRequest(request_id=rid, metadata=metadata, acquisition=f.AcquisitionFlow(
        merchant="m1", channel="visa", amount=amount, currency=USD))


@pytest.fixture
def recon(server: Server) -> Recon:
    return Recon(server)


def counts(response) -> dict[int, tuple[int, int, int, int]]:
    return {c.state: (c.items, c.ours, c.theirs, c.open_items) for c in response.counts}


def by_reference(items) -> dict[str, pb.ReconciliationItem]:
    return {(item.lines[0].reference if item.lines else item.entries[0]): item for item in items}


def statement(day: str) -> str:
    return "\n".join([
        "id,reference,amount,date,description",
        f"L1,ORD-A,5.00,{day},one to one",
        f"L2,ORD-B,2.99,{day},a fee kept back: a difference",
        f"L3,BATCH-1,2.50,{day},one line for two payments",
        f"L4,,4.00,{day},no reference: amount and date",
        f"L5,ORD-G,4.00,{day},two lines for one payment",
        f"L6,ORD-G,2.00,{day},",
        f"L7,ORD-X,7.00,{day},a payment we never booked",
    ]) + "\n"


def test_a_channel_statement_is_matched_proven_and_resolved(recon: Recon) -> None:
    day = today()
    recon.acquire("a", 5_000_000, channel_ref="ORD-A")
    recon.acquire("b", 3_000_000, channel_ref="ORD-B")
    recon.acquire("c", 2_000_000, channel_ref="ORD-C")  # the statement misses it
    recon.acquire("d", 1_000_000, batch_ref="BATCH-1")
    recon.acquire("e", 1_500_000, batch_ref="BATCH-1")
    recon.acquire("f", 4_000_000)
    recon.acquire("g", 6_000_000, order_ref="ORD-G")
    assert recon.bal(CLEARING) == 22_500_000
    closing = 27_490_000  # what the channel says it owes: the sum of its lines

    imported = recon.import_csv("visa-2026-12", statement(day), closing)
    assert imported.replayed is False
    assert imported.statement.line_count == 7 and imported.statement.ledger_balance == 22_500_000
    assert (imported.statement.start_date, imported.statement.end_date) == (day, day)
    assert counts(imported) == {MATCHED: (4, 17_500_000, 17_500_000, 0), DIFFERENCE: (1, 3_000_000, 2_990_000, 1),
                                OURS: (1, 2_000_000, 0, 1), THEIRS: (1, 0, 7_000_000, 1)}
    items = by_reference(recon.items("visa-2026-12"))
    assert items["ORD-A"].state == MATCHED and items["ORD-A"].rule == "reference"
    assert (items["BATCH-1"].state, len(items["BATCH-1"].entries), len(items["BATCH-1"].lines)) == (MATCHED, 2, 1)
    assert (items["ORD-G"].state, len(items["ORD-G"].entries), len(items["ORD-G"].lines)) == (MATCHED, 1, 2)
    assert (items[""].state, items[""].rule, items[""].ours) == (MATCHED, "amount_date", 4_000_000)
    assert (items["ORD-B"].state, items["ORD-B"].difference, items["ORD-B"].open_amount) == (DIFFERENCE, 10_000, 10_000)
    assert (items["ORD-X"].state, items["ORD-X"].theirs, items["ORD-X"].rule) == (THEIRS, 7_000_000, "")
    ours_only = next(i for i in items.values() if i.state == OURS)
    assert ours_only.ours == 2_000_000 and not ours_only.lines

    report = recon.report("visa-2026-12")
    assert {i.id for i in report.open_items} == {items["ORD-B"].id, items["ORD-X"].id, ours_only.id}
    p = report.fund_proof
    assert (p.ledger_balance, p.resolutions, p.closing_balance, p.open_items, p.proven) == (
        22_500_000, 0, closing, 2_000_000 + 10_000 - 7_000_000, True)

    # Idempotent: the same file again, under its id or another, matches nothing twice.
    again = recon.import_csv("visa-2026-12", statement(day), closing, rid="imp-again")
    assert again.replayed is True and counts(again) == counts(imported)
    assert recon.import_csv("visa-2026-12-copy", statement(day), closing).replayed is True
    assert len(recon.items("visa-2026-12")) == 7
    code, reason, _ = error_info(_raises(lambda: recon.import_csv("visa-2026-12", statement(day) + "\n\n", closing)))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "STATEMENT_ID_REUSED")

    # Resolutions are the operator's, never silent: the direction must fit the difference.
    code, reason, _ = error_info(_raises(lambda: recon.resolve("r-b0", items["ORD-B"].id, pb.RESOLUTION_LONG_FALL)))
    assert (code, reason) == (INVALID, "RESOLUTION_MISMATCH")
    code, reason, _ = error_info(_raises(lambda: recon.resolve("r-a", items["ORD-A"].id, pb.RESOLUTION_SHORT_FALL)))
    assert (code, reason) == (INVALID, "ITEM_ALREADY_MATCHED")
    code, reason, _ = error_info(_raises(lambda: recon.resolve("r-x0", items["ORD-X"].id,
                                                               pb.RESOLUTION_SUPPLEMENTARY)))
    assert (code, reason) == (INVALID, "PARTY_MISSING")

    short = recon.resolve("r-b", items["ORD-B"].id, pb.RESOLUTION_SHORT_FALL)
    (voucher,) = [recon.server.accounting().GetVoucher(_get(v), metadata=recon.md).voucher for v in short.voucher_ids]
    assert lines(voucher) == [("shortfall:USD", "D", 10_000), (CLEARING, "C", 10_000)]
    assert voucher.rule_id == "reconciliation.channel_clearing_shortfall"
    assert voucher.metadata["reconciliation_item"] == items["ORD-B"].id
    assert short.item.resolution == pb.RESOLUTION_SHORT_FALL and short.item.open_amount == 0
    assert short.item.resolution_voucher_id == voucher.id
    replay = recon.resolve("r-b", items["ORD-B"].id, pb.RESOLUTION_SHORT_FALL)
    assert replay.replayed is True and list(replay.voucher_ids) == list(short.voucher_ids)
    code, reason, _ = error_info(_raises(lambda: recon.resolve("r-b2", items["ORD-B"].id, pb.RESOLUTION_SHORT_FALL)))
    assert (code, reason) == (PRECONDITION, "ITEM_ALREADY_RESOLVED")

    supplementary = recon.resolve("r-x", items["ORD-X"].id, pb.RESOLUTION_SUPPLEMENTARY, party="m2")
    principal = recon.server.accounting().GetVoucher(_get(supplementary.voucher_ids[0]), metadata=recon.md).voucher
    assert lines(principal) == [(CLEARING, "D", 7_000_000), ("merchant:m2:USD/pending", "C", 7_000_000)]
    assert principal.metadata["channel_ref"] == "ORD-X"
    recon.resolve("r-c", ours_only.id, pb.RESOLUTION_SHORT_FALL)

    # Every item settled: the clearing account now holds exactly what the channel says it owes.
    report = recon.report("visa-2026-12")
    assert list(report.open_items) == []
    p = report.fund_proof
    assert (p.ledger_balance + p.resolutions, p.open_items, p.proven) == (closing, 0, True)
    assert recon.bal(CLEARING) == closing
    assert recon.bal("shortfall:USD") == 2_010_000
    recon.check_books()


def _get(voucher_id: str):
    from tally.v1 import accounting_service_pb2 as post_pb

    return post_pb.GetVoucherRequest(voucher_id=voucher_id)


def _raises(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("text, line, field", [
    ("reference,amount,date\nA,1.00,{day}\nB,1.0x,{day}\n", "3", "amount"),
    ("reference,amount,date\nA,1.00,{day}\nB,1.00,12/07/2026\n", "3", "value_date"),
    ("reference,amount,date\nA,1.0000001,{day}\n", "2", "amount"),
    ("ref,amount,date\nA,1.00,{day}\n", "1", "reference"),
    ("reference,amount,date\nA,1.00\n", "2", "value_date"),
])
def test_a_malformed_csv_is_refused_whole_naming_line_and_field(recon: Recon, text: str, line: str,
                                                                 field: str) -> None:
    recon.acquire("a", 1_000_000, channel_ref="A")
    err = _raises(lambda: recon.import_csv("bad", text.format(day=today()), 1_000_000))
    code, reason, meta = error_info(err)
    assert (code, reason, meta["line"], meta["field"]) == (INVALID, "STATEMENT_MALFORMED", line, field)
    assert error_info(_raises(lambda: recon.report("bad")))[:2] == (grpc.StatusCode.NOT_FOUND, "STATEMENT_NOT_FOUND")


def test_a_csv_layout_of_the_rule_set_names_the_columns(recon: Recon) -> None:
    recon.acquire("a", 1_000_000, channel_ref="A-1")
    text = ("transaction_id,type,merchant_reference,net_amount,settlement_date\n"
            f"t1,capture,A-1,0.99,{today()}\n")
    request = pb.ImportStatementRequest(request_id="imp-layout", account=ref(CLEARING),
                                        format=pb.STATEMENT_FORMAT_CSV, statement_file=text.encode(),
                                        statement_id="layout-1", csv_layout="channel_settlement_report")
    imported = recon.settle.ImportStatement(request, metadata=recon.md)
    assert counts(imported)[DIFFERENCE] == (1, 1_000_000, 990_000, 1)
    (item,) = recon.items("layout-1", DIFFERENCE)
    assert (item.lines[0].line_id, item.lines[0].description) == ("t1", "capture")
    request.statement_id, request.csv_layout = "layout-2", "nope"
    assert error_info(_raises(lambda: recon.settle.ImportStatement(request, metadata=recon.md)))[:2] == (
        INVALID, "STATEMENT_LAYOUT_UNKNOWN")


def test_oversized_statements_are_refused_and_import_nothing(recon: Recon) -> None:
    day = today()
    recon.acquire("a", 1_000_000, channel_ref="R0")
    too_many = "reference,amount,date\n" + "".join(f"R{i},1.00,{day}\n" for i in range(10_001))
    code, reason, _ = error_info(_raises(lambda: recon.import_csv("many", too_many)))
    assert (code, reason) == (INVALID, "STATEMENT_TOO_LARGE")
    too_big = "reference,amount,date,description\n" + f"R,1.00,{day},{'x' * 200}\n" * 11_000
    assert len(too_big) > 2 * 1024 * 1024
    code, reason, _ = error_info(_raises(lambda: recon.import_csv("big", too_big)))
    assert (code, reason) == (INVALID, "STATEMENT_TOO_LARGE")
    for statement_id in ("many", "big"):
        assert error_info(_raises(lambda sid=statement_id: recon.report(sid)))[1] == "STATEMENT_NOT_FOUND"


CAMT = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>M1</MsgId><CreDtTm>{day}T18:00:00Z</CreDtTm></GrpHdr>
    <Stmt>
      <Id>CAMT-1</Id>
      <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="USD">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd>
        <Dt><Dt>{day}</Dt></Dt></Bal>
      <Ntry><Amt Ccy="USD">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>B-1</AcctSvcrRef>
        <NtryDtls><TxDtls><Refs><EndToEndId>ORD-A</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
      <Ntry><Amt Ccy="USD">{payout}</Amt><CdtDbtInd>{indicator}</CdtDbtInd>
        <ValDt><Dt>{day}</Dt></ValDt><NtryRef>VISA-PAYOUT-1</NtryRef></Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>
"""


def test_a_camt053_statement_matches_payments_and_the_channel_payout(recon: Recon) -> None:
    day = today()
    recon.acquire("a", 5_000_000, channel_ref="ORD-A")
    recon.acquire("b", 3_000_000, channel_ref="ORD-B")
    recon.post("pay", metadata={"batch_ref": "VISA-PAYOUT-1"}, settlement=f.SettlementFlow(
        kind=f.SETTLEMENT_KIND_CHANNEL, channel="visa", amount=3_000_000, currency=USD))
    content = CAMT.format(day=day, closing="2.00", payout="3.00", indicator="DBIT").encode()

    def camt(data: bytes):
        return recon.settle.ImportStatement(pb.ImportStatementRequest(
            request_id="camt", account=ref(CLEARING), format=pb.STATEMENT_FORMAT_CAMT053, statement_file=data),
            metadata=recon.md)

    imported = camt(content)
    assert imported.statement.statement_id == "CAMT-1" and imported.statement.closing_balance == 2_000_000
    assert counts(imported)[MATCHED] == (2, 2_000_000, 2_000_000, 0)  # +5.00 and the -3.00 payout
    assert counts(imported)[OURS] == (1, 3_000_000, 0, 1)  # ORD-B: on the next statement, perhaps
    assert recon.report("CAMT-1").fund_proof.proven is True

    bad = CAMT.format(day=day, closing="2.00", payout="3.00", indicator="DEBIT").replace("CAMT-1", "CAMT-2")
    code, reason, meta = error_info(_raises(lambda: camt(bad.encode())))
    assert (code, reason, meta["field"], meta["line"]) == (INVALID, "STATEMENT_MALFORMED", "CdtDbtInd", "12")
    entity = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "boom">]><Document>&x;</Document>')
    assert error_info(_raises(lambda: camt(entity)))[:2] == (INVALID, "STATEMENT_MALFORMED")
    truncated = content[: len(content) // 2].replace(b"CAMT-1", b"CAMT-3")
    assert error_info(_raises(lambda: camt(truncated)))[:2] == (INVALID, "STATEMENT_MALFORMED")


def test_the_recon_cli_imports_shows_and_resolves(recon: Recon, tmp_path, capsys) -> None:
    from tally import cli
    from tests.e2e.conftest import TenantKeys

    key = TenantKeys.for_target(recon.server.target).key_for(recon.tenant)

    def tally(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = cli.main([*argv, "--target", recon.server.target, "--api-key", key])
        out = capsys.readouterr()
        return status, out.out, out.err

    recon.acquire("a", 5_000_000, channel_ref="ORD-A")
    recon.acquire("b", 3_000_000, channel_ref="ORD-B")
    path = tmp_path / "visa.csv"
    path.write_text(f"ref;amt;when\nORD-A;5.00;{today()}\nORD-B;2.95;{today()}\n".replace(";", ","))
    status, out, err = tally("recon", "import", CLEARING, str(path), "--statement-id", "cli-1", "--closing-balance",
                             "7950000", "--column", "reference=ref", "amount=amt", "value_date=when", "--json")
    assert status == 0, err
    assert json.loads(out)["statement"]["line_count"] == "2"
    status, out, _ = tally("recon", "show", CLEARING, "cli-1")
    assert status == 0 and "fund proof (proven)" in out and "difference" in out
    status, out, _ = tally("recon", "show", CLEARING, "cli-1", "--items", "--state", "difference", "--json")
    (item,) = json.loads(out)["items"]
    assert item["difference"] == "50000"
    status, out, err = tally("recon", "resolve", item["id"], "--as", "short-fall", "--request-id", "cli-r1")
    assert status == 0, err
    assert "short_fall" in out
    status, out, _ = tally("recon", "show", CLEARING, "cli-1")
    assert "open items:\n(none)" in out
    assert recon.bal(CLEARING) == 7_950_000
    status, _, err = tally("recon", "import", CLEARING, str(tmp_path / "missing.csv"))
    assert status == 2 and "missing.csv" in err
