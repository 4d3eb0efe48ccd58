"""MergeAccounts: folds source accounts into a target in one write transaction.

Per source, the batch writer posts a `merge` voucher that moves its balance to the target, and releases
each active hold there to open it again, for what it still reserves, on the target (hold ids change: the
answer pairs them). Then each source is closed, and its merge row makes its code lead to the target for
new postings (`service/posting/account_links.py`). Statements of the source stay where they were. The
request's idempotency record is written in the same transaction, so a resend answers the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy import Connection

from tally.domain.accounts import Account, AccountStatus
from tally.domain.calendar import AccountingCalendar
from tally.domain.errors import LedgerError, missing_account, precondition
from tally.domain.fields import check_request_id, check_tenant
from tally.domain.holds import Hold
from tally.domain.ids import new_id
from tally.domain.merging import (
    MERGE_HOLDS_MAX,
    HoldPolicy,
    MovedHold,
    SourceMove,
    check_holds,
    check_merge,
    check_request,
    move_draft,
)
from tally.domain.vouchers import AccountRef
from tally.service.accounts import account_from
from tally.service.posting.batch import Posted, Submission, write_batch
from tally.service.posting.events import account_payload, append_event
from tally.service.posting.hold_book import HoldAction, HoldOp
from tally.service.posting.idempotency import (
    FINAL_REFUSALS,
    canonical,
    fingerprint,
    refusal_from,
    refusal_result,
    reused_request_id,
)
from tally.storage import accounts_repo, hierarchy_repo, holds_repo, ledger_repo, merges_repo, securities_repo
from tally.storage.ledger_repo import IdempotencyRecord
from tally.storage.merges_repo import MergeRow
from tally.storage.uow import UnitOfWork


@dataclass(frozen=True)
class MergeAccounts:
    tenant_id: str
    request_id: str
    sources: tuple[AccountRef, ...]
    target: AccountRef
    hold_policy: HoldPolicy = HoldPolicy.MOVE
    memo: str = ""
    actor: str = ""

    operation = "merge_accounts"

    def body(self) -> dict:
        return {"sources": canonical(list(self.sources)), "target": canonical(self.target),
                "hold_policy": self.hold_policy.value, "memo": self.memo}


@dataclass(frozen=True)
class MergeResult:
    target: Account
    moves: tuple[SourceMove, ...]
    replayed: bool = False


def merge_accounts(cmd: MergeAccounts, uow: UnitOfWork, calendar: AccountingCalendar,
                   clock: Callable[[], int]) -> MergeResult:
    check_tenant(cmd.tenant_id)
    check_request_id(cmd.request_id)
    check_request(list(cmd.sources), cmd.target)

    def work(conn: Connection) -> MergeResult | LedgerError:
        replay = _replay(conn, cmd)
        if replay is not None:
            return replay
        now = clock()
        try:
            target, sources, holds = _checked(conn, cmd, now)
        except LedgerError as error:
            if error.kind not in FINAL_REFUSALS:
                raise
            _record(conn, cmd, refusal_result(error), now)  # nothing written yet: commits just the record
            return error
        return _merge(conn, cmd, target, sources, holds, calendar, now)

    result = uow.write({cmd.tenant_id}, work)
    if isinstance(result, LedgerError):
        raise result
    return result


def _checked(conn: Connection, cmd: MergeAccounts, now: int) -> tuple[Account, list[Account], dict[str, list[Hold]]]:
    target = _existing(conn, cmd.tenant_id, cmd.target)
    sources = [_existing(conn, cmd.tenant_id, ref) for ref in cmd.sources]
    children = {s.id: hierarchy_repo.count_children(conn, cmd.tenant_id, s.id) for s in sources}
    check_merge(sources, target, children)
    secured = securities_repo.touching(conn, cmd.tenant_id, [s.id for s in sources], 1)
    if secured:
        raise precondition("MERGE_SOURCE_SECURED", "a source is linked as credit or security deposit: "
                           "a merge would leave the link dangling", account_id=secured[0].credit_id)
    holds = {s.id: holds_repo.list_holds(conn, cmd.tenant_id, after_id="", limit=MERGE_HOLDS_MAX + 1,
                                         account_id=s.id, status="active") for s in sources}
    # A hold past its expiry is the expirer's to end: it expires here, and is not moved.
    check_holds(cmd.hold_policy, [h for found in holds.values() for h in found if not _expired(h, now)])
    return target, sources, holds


def _merge(conn: Connection, cmd: MergeAccounts, target: Account, sources: list[Account],
           holds: dict[str, list[Hold]], calendar: AccountingCalendar, now: int) -> MergeResult:
    balances = accounts_repo.load_balances(conn, cmd.tenant_id, [s.id for s in sources], for_update=True)
    subs, pairs = [], []
    for index, source in enumerate(sources):
        draft = move_draft(source, target, balances[source.id], cmd.memo)
        moving = [h for h in holds[source.id] if not _expired(h, now)]
        moved = [(h, _moved_hold(h, target, cmd, now)) for h in moving]
        ops = [HoldOp(HoldAction.EXPIRE if _expired(h, now) else HoldAction.RELEASE, h.id) for h in holds[source.id]]
        # Released and moved first, then reopened on the target: the target's available then covers them.
        subs.append(_submission(cmd, f"{index}a", ops, (draft,) if draft else ()))
        subs.append(_submission(cmd, f"{index}b", [
            HoldOp(HoldAction.CREATE, new.id, account=AccountRef(id=target.id), new_hold=new) for _, new in moved]))
        pairs.append((source, draft is not None, moved))
    outcomes = write_batch(conn, subs, now, calendar)
    for outcome in outcomes:
        if isinstance(outcome, LedgerError):
            raise outcome  # the whole merge rolls back
    moves = tuple(_move(source, balances[source.id].current, posted, moved)
                  for (source, _, moved), posted in zip(pairs, outcomes[::2], strict=True))
    _close_sources(conn, cmd, target, sources, moves, now)
    result = MergeResult(target, moves)
    _record(conn, cmd, _result_body(result), now)
    return result


def _submission(cmd: MergeAccounts, part: str, ops: list[HoldOp], drafts: tuple = ()) -> Submission:
    # Every submission keeps an idempotency record of its own: keyed under the merge's request, by part.
    key = hashlib.sha256(cmd.request_id.encode()).hexdigest()[:40]
    return Submission(cmd.tenant_id, f"merge:{key}:{part}", "merge_part", {"part": part}, drafts=drafts,
                      hold_ops=tuple(ops), group=1, actor=cmd.actor)


def _moved_hold(hold: Hold, target: Account, cmd: MergeAccounts, now: int) -> Hold:
    return replace(hold, id=new_id(), account_id=target.id, amount=hold.remaining, captured=0,
                   request_id=cmd.request_id, created_by=cmd.actor, created_us=now, updated_us=now,
                   capture_voucher_ids=(), metadata={**hold.metadata, "moved_from_hold": hold.id})


def _move(source: Account, current: int, posted: Posted, moved: list[tuple[Hold, Hold]]) -> SourceMove:
    voucher_id = posted.vouchers[0].id if posted.vouchers else ""
    return SourceMove(source.id, voucher_id, current,
                      tuple(MovedHold(old.id, new.id, new.amount) for old, new in moved))


def _close_sources(conn: Connection, cmd: MergeAccounts, target: Account, sources: list[Account],
                   moves: tuple[SourceMove, ...], now: int) -> None:
    for source, move in zip(sources, moves, strict=True):
        closed = replace(source, status=AccountStatus.CLOSED, updated_us=now)
        accounts_repo.update_account(conn, closed)
        # An account update (closed) to streams and webhooks, naming the merge.
        payload = {**account_payload(closed), "change": {"status": "closed"}, "merged_into": target.id,
                   "voucher_id": move.voucher_id, "holds": [[h.source_hold_id, h.target_hold_id] for h in move.holds]}
        append_event(conn, cmd.tenant_id, "account.updated", payload, now, account_id=source.id)
    merges_repo.insert_merges(conn, [MergeRow(cmd.tenant_id, m.source_id, target.id, m.voucher_id, cmd.request_id,
                                              cmd.actor, now) for m in moves])


def _expired(hold: Hold, now: int) -> bool:
    return hold.expires_us is not None and hold.expires_us <= now


def _existing(conn: Connection, tenant_id: str, ref: AccountRef) -> Account:
    account = accounts_repo.get_account(conn, tenant_id, ref)
    if account is None:
        raise missing_account(ref)  # the same answer for another tenant's account: nothing leaks
    return account


def _result_body(result: MergeResult) -> dict:
    return {"target": canonical(result.target), "moves": canonical(list(result.moves))}


def _replay(conn: Connection, cmd: MergeAccounts) -> MergeResult | None:
    key = (cmd.tenant_id, cmd.request_id)
    record = ledger_repo.load_records(conn, [key]).get(key)
    if record is None:
        return None
    if record.operation != cmd.operation or record.fingerprint != fingerprint(cmd.operation, cmd.body()):
        raise reused_request_id(cmd.request_id, cmd.operation, record.operation, record.body, cmd.body())
    if "error" in record.result:
        raise refusal_from(record.result["error"])
    moves = tuple(SourceMove(m["source_id"], m["voucher_id"], m["amount"],
                             tuple(MovedHold(**h) for h in m["holds"])) for m in record.result["moves"])
    return MergeResult(account_from(record.result["target"]), moves, replayed=True)


def _record(conn: Connection, cmd: MergeAccounts, result: dict, now: int) -> None:
    ledger_repo.insert_records(conn, [IdempotencyRecord(
        cmd.tenant_id, cmd.request_id, cmd.operation, fingerprint(cmd.operation, cmd.body()), cmd.body(),
        result, now, actor=cmd.actor)])


def merged_into(uow: UnitOfWork, tenant_id: str, account_id: str) -> str:
    """The account a merged account's code leads to ("" when it was not merged)."""
    return uow.read({tenant_id}, lambda conn: merges_repo.targets_of(conn, tenant_id, [account_id])).get(
        account_id, "")
