"""`tally demo`: the life of a small usage-billing platform, posted against a running server.

Two consumers fund their accounts (card, ACH) and call two merchants' APIs (usage, with the platform fee
and an affiliate commission); a card order is acquired through a channel with a platform coupon and partly
refunded; the merchant, the channel and the bank settle; a merchant gets its payout prerequisites (KYC,
bank account) and is paid out an amount with sub-cent digits, the residue staying in its account. After
each step the vouchers posted and the balances of the accounts they touched are printed (before, change,
after); at the end the trial balance, which must be BALANCED in every currency (exit 1 otherwise), and the
close of the run's accounting day: an operator's end of day, early when the day's cut-off has not passed
(postings in the tenant then get the next date), showing the day's trial balance, totals per flow type and
summary vouchers (--no-close leaves the day open).

The demo runs in the tenant of the API key (a poster key posts the flows; the KYC step needs an operator
or admin key). Every party (consumers, processors, merchants, affiliate, channel) and every request id
starts with the run label, --run (default: 8 random hex digits), so a rerun with the same --run replays
each step instead of posting it twice, and runs with different labels do not touch one another's
accounts. The balances shown are those right after each step (from the accounts' entries), so a replay
prints the same numbers. The final check is the trial balance of the whole tenant. Amounts are integers
of atomic units; the default rules and currencies (USD counted in millionths, paid out in cents) are
assumed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import field_mask_pb2, json_format

from tally.cli import common
from tally.cli import format as fmt
from tally.cli.books import trial_balance_text
from tally.cli.days import day_text, summaries_text
from tally.cli.flows import posted_lines_table
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import account_service_pb2_grpc as acc_grpc
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import accounting_service_pb2_grpc as post_grpc
from tally.v1 import bookkeeping_service_pb2 as book_pb
from tally.v1 import bookkeeping_service_pb2_grpc as book_grpc
from tally.v1 import day_service_pb2 as day_pb
from tally.v1 import day_service_pb2_grpc as day_grpc
from tally.v1 import flows_pb2, types_pb2

CURRENCY = "USD"
PAGE_SIZE = 500
CONSUMERS = {"alice": ("card", 50_000_000), "bob": ("ach", 30_000_000)}
MERCHANTS = ("acme", "globex")
AFFILIATE = "partner"
CHANNEL = "visa"
USAGE = {("alice", "acme"): 12_345_678, ("alice", "globex"): 3_210_987,
         ("bob", "acme"): 7_654_321, ("bob", "globex"): 1_234_567}
ORDER, COUPON, REFUND = 20_000_000, 2_000_000, 5_000_000
MERCHANT_SETTLEMENT = 10_000_000
CHANNEL_SETTLEMENT = 13_500_000  # what visa owes after the refund: (order - coupon) * (1 - refund / order)
PAYOUT_MERCHANT, PAYOUT = "acme", 12_345_678  # sub-cent digits: the bank pays whole cents
PAYOUT_METADATA = {"kyc_status": "verified", "bank_account": "DE89370400440532013000"}
RUN_LENGTH_MAX = 32
_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")



def default_run() -> str:
    return secrets.token_hex(4)


def parse_run(text: str) -> str:
    """A run label: letters, digits, _ and -, starting with a letter or digit, at most 32 characters (it
    becomes part of account codes and request ids)."""
    if len(text) > RUN_LENGTH_MAX or not _RUN.fullmatch(text):
        raise ValueError(f"a run label is 1 to {RUN_LENGTH_MAX} letters, digits, _ and -, starting with a letter "
                         f"or digit, got {text!r}")
    return text


def party(run: str, name: str) -> str:
    """A party of one run: `<run>-<name>`, so runs with different labels open different accounts."""
    return f"{run}-{name}"


def request_id(run: str, key: str) -> str:
    """The fixed request id of one demo request: the same run always gets the same ids."""
    return f"{run}.{key}"


def _dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


@dataclass
class Move:
    """One account's balance around a step: before its first entry of the step, after its last."""

    code: str
    account_id: str
    currency: str
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before


@dataclass
class Stage:
    number: int
    title: str
    request_ids: list[str] = field(default_factory=list)
    vouchers: list[types_pb2.Voucher] = field(default_factory=list)
    replayed: list[bool] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Demo:
    def __init__(self, args: argparse.Namespace, accounts, posting, books) -> None:
        self.args, self.accounts, self.posting, self.books = args, accounts, posting, books
        self.run = args.run
        self.tenant = ""  # the API key's, learned from the server's first answer
        self.announced = False
        self.stages: list[Stage] = []
        self.stage: Stage | None = None

    def party(self, name: str) -> str:
        return party(self.run, name)

    def learn_tenant(self, tenant_id: str) -> None:
        self.tenant = self.tenant or tenant_id

    # --- requests -----------------------------------------------------------------------------------

    def amount(self, value: int) -> str:
        return fmt.amount_text(value, self.args.scale)

    def post(self, key: str, memo: str = "", **flow) -> post_pb.PostResponse:
        rid = request_id(self.run, key)
        response = self.posting.Post(post_pb.PostRequest(request_id=rid, memo=memo, **flow))
        for voucher in response.vouchers:
            self.learn_tenant(voucher.tenant_id)
        self.stage.request_ids.append(rid)
        self.stage.vouchers.extend(response.vouchers)
        self.stage.replayed.append(response.replayed)
        return response

    def update_metadata(self, key: str, code: str, metadata: dict[str, str]) -> acc_pb.UpdateAccountResponse:
        rid = request_id(self.run, key)
        response = self.accounts.UpdateAccount(acc_pb.UpdateAccountRequest(
            request_id=rid, account=types_pb2.AccountRef(code=code),
            account_update=types_pb2.Account(metadata=metadata),
            update_mask=field_mask_pb2.FieldMask(paths=["metadata"])))
        self.learn_tenant(response.account.tenant_id)
        self.stage.request_ids.append(rid)
        self.stage.replayed.append(response.replayed)
        return response

    def entries(self, account_id: str) -> tuple[int, list[types_pb2.Entry]]:
        """The opening balance and every entry of an account, oldest first."""
        request = acc_pb.ListEntriesRequest(account=types_pb2.AccountRef(id=account_id), page_size=PAGE_SIZE)
        response = self.accounts.ListEntries(request)
        opening, entries = response.opening_balance, list(response.entries)
        while response.next_page_token:
            request.page_token = response.next_page_token
            response = self.accounts.ListEntries(request)
            entries.extend(response.entries)
        return opening, entries

    def moves(self, vouchers: list[types_pb2.Voucher]) -> list[Move]:
        """The balances of the accounts these vouchers touched, just before and just after them."""
        ids = {v.id for v in vouchers}
        accounts: dict[str, str] = {}
        for voucher in vouchers:
            for line in voucher.lines:
                accounts.setdefault(line.account_id, line.account_code or line.account_id)
        moves = []
        for account_id, code in accounts.items():
            opening, entries = self.entries(account_id)
            mine = [i for i, e in enumerate(entries) if e.voucher_id in ids]
            if not mine:
                continue
            first, last = mine[0], mine[-1]
            before = entries[first - 1].balance_after if first else opening
            moves.append(Move(code, account_id, entries[last].currency, before, entries[last].balance_after))
        return moves

    # --- output -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Stage]:
        self.stage = Stage(len(self.stages) + 1, title)
        try:
            yield self.stage
        except common.CALL_ERRORS as exc:
            where = f"run {self.run}" + (f" in tenant {self.tenant}" if self.tenant else "")
            print(f"demo: step {self.stage.number} ({title}) failed; {where}", file=sys.stderr)
            if common.as_tally_error(exc).code == grpc.StatusCode.PERMISSION_DENIED:
                print("demo: the demo posts flows (a poster key) and sets a merchant's KYC metadata (an operator "
                      "or admin key)", file=sys.stderr)
            raise
        self.stage.moves = self.moves(self.stage.vouchers)
        self.stages.append(self.stage)
        if not self.args.json:
            if self.tenant and not self.announced:
                print(f"tenant {self.tenant} (the API key's)\n", flush=True)
                self.announced = True
            print(self.stage_text(self.stage), flush=True)

    def moves_table(self, moves: list[Move]) -> str:
        scale = self.args.scale
        amounts = ["before", "change", "after"]
        columns = ["account", "currency", *amounts]
        numeric = list(amounts)
        if scale is not None:
            columns += [f"{name}_dec" for name in amounts]
            numeric += [f"{name}_dec" for name in amounts]
        rows = []
        for m in moves:
            values = [m.before, m.change, m.after]
            decimals = [] if scale is None else [fmt.format_decimal(v, scale) for v in values]
            rows.append([m.code, m.currency, *values, *decimals])
        return fmt.format_table(columns, rows, numeric=numeric)

    def stage_text(self, stage: Stage) -> str:
        replayed = sum(stage.replayed)
        mark = "" if not replayed else (" (replayed)" if replayed == len(stage.replayed)
                                        else f" ({replayed} of {len(stage.replayed)} replayed)")
        parts = [f"== {stage.number}. {stage.title}{mark}"]
        if stage.vouchers:
            parts += [posted_lines_table(stage.vouchers, self.args.scale), "",
                      "balances (before and after this step):", self.moves_table(stage.moves)]
        parts += stage.notes
        return "\n".join(parts) + "\n"

    def stage_json(self, stage: Stage) -> dict:
        return {"step": stage.number, "title": stage.title, "request_ids": stage.request_ids,
                "replayed": all(stage.replayed) if stage.replayed else False,
                "vouchers": [_dict(v) for v in stage.vouchers], "notes": stage.notes,
                "balances": [{"account": m.code, "account_id": m.account_id, "currency": m.currency,
                              "before": str(m.before), "change": str(m.change), "after": str(m.after)}
                             for m in stage.moves]}


# ---------------------------------------------------------------------------------------------- the story


def _story(d: Demo) -> None:
    usd = CURRENCY
    with d.step("funding: alice pays in by card, bob by ACH"):
        for consumer, (processor, amount) in CONSUMERS.items():
            d.post(f"fund-{consumer}", funding=flows_pb2.FundingFlow(
                consumer=d.party(consumer), processor=d.party(processor), amount=amount, currency=usd,
                external_ref=f"{d.run}-{processor}-{consumer}-0001"))

    with d.step(f"usage: alice and bob call the APIs of {' and '.join(MERCHANTS)}; the platform fee and "
                f"{AFFILIATE}'s affiliate commission come off the top"):
        for (consumer, merchant), amount in USAGE.items():
            d.post(f"usage-{consumer}-{merchant}", usage=flows_pb2.UsageFlow(
                consumer=d.party(consumer), merchant=d.party(merchant), amount=amount, currency=usd,
                affiliate=d.party(AFFILIATE), meter=f"api calls of {consumer} at {merchant}"))

    with d.step(f"acquisition: an order of {d.amount(ORDER)} at acme paid through {CHANNEL}, with a platform "
                f"coupon of {d.amount(COUPON)}"):
        d.post("order-1", acquisition=flows_pb2.AcquisitionFlow(
            merchant=d.party("acme"), channel=d.party(CHANNEL), amount=ORDER, currency=usd,
            order_ref=f"{d.run}-order-1",
            coupon=flows_pb2.Coupon(issuer=flows_pb2.COUPON_ISSUER_PLATFORM, amount=COUPON, coupon_id="WELCOME")))

    with d.step(f"refund: {d.amount(REFUND)} of that order goes back; every line is reversed in proportion"):
        d.post("refund-order-1", refund=flows_pb2.RefundFlow(
            original_request_id=request_id(d.run, "order-1"), amount=REFUND, currency=usd,
            reason="one item returned"))

    with d.step(f"merchant settlement: {d.amount(MERCHANT_SETTLEMENT)} of acme's pending funds are settled"):
        d.post("settle-acme-1", settlement=flows_pb2.SettlementFlow(
            kind=flows_pb2.SETTLEMENT_KIND_MERCHANT, merchant=d.party("acme"), amount=MERCHANT_SETTLEMENT,
            currency=usd, batch_ref=f"{d.run}-merchant-batch-1"))

    with d.step(f"channel settlement: {CHANNEL} clears what it owes, {d.amount(CHANNEL_SETTLEMENT)}"):
        d.post("settle-visa-1", settlement=flows_pb2.SettlementFlow(
            kind=flows_pb2.SETTLEMENT_KIND_CHANNEL, channel=d.party(CHANNEL), amount=CHANNEL_SETTLEMENT,
            currency=usd, batch_ref=f"{d.run}-visa-batch-1"))

    with d.step(f"bank settlement: the {d.amount(CHANNEL_SETTLEMENT)} arrive on the platform's bank account"):
        d.post("bank-visa-1", settlement=flows_pb2.SettlementFlow(
            kind=flows_pb2.SETTLEMENT_KIND_BANK, channel=d.party(CHANNEL), amount=CHANNEL_SETTLEMENT,
            currency=usd, batch_ref=f"{d.run}-bank-statement-1"))

    code = f"merchant:{d.party(PAYOUT_MERCHANT)}:{CURRENCY}/settled"
    with d.step(f"payout prerequisites: {PAYOUT_MERCHANT}'s KYC is verified and its bank account on file") as s:
        account = d.update_metadata(f"kyc-{PAYOUT_MERCHANT}", code, PAYOUT_METADATA).account
        s.notes.append(f"{code} metadata: {fmt.metadata_text(account.metadata)}")

    with d.step(f"payout: {d.amount(PAYOUT)} requested for {PAYOUT_MERCHANT}; the bank moves whole cents") as s:
        response = d.post(f"payout-{PAYOUT_MERCHANT}-1", payout=flows_pb2.PayoutFlow(
            merchant=d.party(PAYOUT_MERCHANT), amount=PAYOUT, currency=usd))
        paid = sum(line.amount for v in response.vouchers for line in v.lines
                   if line.account_code == code and line.side == types_pb2.SIDE_DEBIT)
        s.notes.append(f"requested {d.amount(PAYOUT)}, paid out {d.amount(paid)}: the residue of "
                       f"{d.amount(PAYOUT - paid)} below the bank's minor unit stays in {code}")


def close_day(d: Demo, days) -> day_pb.AccountingDay:
    """Closes the accounting day of the run's first voucher (early, if its cut-off has not passed). A rerun
    finds it closed and shows what was stored."""
    first = next(v for stage in d.stages for v in stage.vouchers)
    response = days.CloseAccountingDay(day_pb.CloseAccountingDayRequest(
        accounting_date=first.accounting_date, early=True, request_id=request_id(d.run, "close-day")))
    return response.day


def _month(args: argparse.Namespace, demo: Demo) -> dict:
    from tally.cli.demo_month import month_story
    from tally.v1 import settlement_service_pb2_grpc

    with common.stub(args, settlement_service_pb2_grpc.SettlementServiceStub) as settle:
        return month_story(demo, settle)


def cmd_demo(args: argparse.Namespace) -> int:
    args.run = args.run or default_run()
    if not args.json:
        what = "a month of settlement" if args.month else "a small usage-billing platform"
        print(f"tally demo: {what}, run {args.run}, at {args.target}")
        print(f"(every party and request id starts with the run label: `tally demo --run {args.run}` replays it, "
              "posting nothing twice)\n", flush=True)
    month = None
    with common.stub(args, acc_grpc.AccountServiceStub) as accounts, \
            common.stub(args, post_grpc.AccountingServiceStub) as posting, \
            common.stub(args, book_grpc.BookkeepingServiceStub) as books, \
            common.stub(args, day_grpc.DayServiceStub) as days:
        demo = Demo(args, accounts, posting, books)
        if args.month:
            month = _month(args, demo)
        else:
            _story(demo)
        trial = books.GetTrialBalance(book_pb.GetTrialBalanceRequest())
        day = None if args.no_close else close_day(demo, days)
        summaries = [] if day is None else list(days.ListSummaries(day_pb.ListSummariesRequest(
            accounting_date=day.accounting_date, page_size=PAGE_SIZE)).summaries)
    off = sorted(t.currency for t in trial.totals if t.difference != 0)
    balanced = trial.balanced and not off
    uncleared = {code: value for code, value in (month or {}).get("clearing_balances", {}).items() if value != "0"}
    requests = sum(len(s.replayed) for s in demo.stages)
    replayed = sum(sum(s.replayed) for s in demo.stages)
    tenant = demo.tenant or "of the API key"
    if args.json:
        print(json.dumps({"run": args.run, "tenant": demo.tenant, "steps": [demo.stage_json(s) for s in demo.stages],
                          "trial_balance": _dict(trial), "balanced": balanced, "requests": requests,
                          "replayed": replayed, "day": _dict(day) if day else None,
                          "summaries": [_dict(s) for s in summaries],
                          **({"month": month} if month else {})}, indent=2,
                         ensure_ascii=False))
    else:
        print(f"== trial balance of tenant {tenant} (every run in it)")
        print(trial_balance_text(trial, args.scale))
        if day is not None:
            print(f"\n== accounting day {day.accounting_date} closed (its vouchers are every run's of that day)")
            print(day_text(day, args.scale))
            print("\nsummary vouchers (the general-ledger export carries these instead of their detail):")
            print(summaries_text(summaries, args.scale))
        print(f"\n{requests} requests: {requests - replayed} done now, {replayed} replayed")
        if month:
            print("clearing accounts: " + ", ".join(f"{c} {v}" for c, v in month["clearing_balances"].items()))
    if uncleared:
        print(f"demo: clearing accounts not at zero: {uncleared}", file=sys.stderr)
        return common.EXIT_REFUSED
    if not balanced:
        print(f"demo: the books of tenant {tenant} are NOT BALANCED ({', '.join(off) or 'per the server'})",
              file=sys.stderr)
        return common.EXIT_REFUSED
    return 0


def add_demo_parser(commands) -> argparse.ArgumentParser:
    """Registers `tally demo` on the `tally` command's subparsers."""
    demo = commands.add_parser(
        "demo", parents=[common.client_options()],
        help="run the life of a small usage-billing platform against a server",
        description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--run", type=common.arg(parse_run), metavar="LABEL",
                      help="run label prefixed to every party and request id (default: 8 random hex digits); "
                           "the same label again replays the run")
    demo.add_argument("--no-close", action="store_true", help="leave the run's accounting day open")
    demo.add_argument("--month", action="store_true",
                      help="run a month of the settlement side instead: a channel statement reconciled and "
                           "resolved, settlements, payout batches exported as pain.001 and sent, a return")
    demo.set_defaults(func=cmd_demo)
    return demo
