"""Commands: what a caller asks for, already mapped from the wire and free of transport types.

`actor` names who asks (`key:<id>`, `jwt:<subject>`, or `system:<task>`); it is kept with the request's
idempotency record and is not part of the body, so the same request resent under another credential of
the same tenant still replays."""

from __future__ import annotations

from dataclasses import dataclass, field

from tally.domain.accounts import AccountChange, NewAccount
from tally.domain.flows import Flow
from tally.domain.vouchers import AccountRef
from tally.service.posting.idempotency import canonical


@dataclass(slots=True)  # not frozen: one per request on the hot path, never changed once read from the wire
class PostFlow:
    tenant_id: str
    request_id: str
    flow: Flow
    memo: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    effective_us: int | None = None
    actor: str = ""

    operation = "post"

    def body(self) -> dict:
        return {"flow_type": self.flow.flow_type, "flow": canonical(self.flow), "memo": self.memo,
                "metadata": dict(self.metadata), "effective_us": self.effective_us}


@dataclass(frozen=True)
class ReverseVoucher:
    tenant_id: str
    request_id: str
    voucher_id: str
    reason: str = ""
    actor: str = ""

    operation = "reverse"

    def body(self) -> dict:
        return {"voucher_id": self.voucher_id, "reason": self.reason}


@dataclass(frozen=True)
class CreateAccount:
    tenant_id: str
    request_id: str
    spec: NewAccount
    parent: AccountRef | None = None
    actor: str = ""

    operation = "create_account"

    def body(self) -> dict:
        return {"spec": canonical(self.spec), "parent": canonical(self.parent)}


@dataclass(frozen=True)
class UpdateAccount:
    tenant_id: str
    request_id: str
    account: AccountRef
    change: AccountChange
    actor: str = ""

    operation = "update_account"

    def body(self) -> dict:
        return {"account": canonical(self.account), "change": canonical(self.change)}


@dataclass(frozen=True)
class CreateHold:
    tenant_id: str
    request_id: str
    account: AccountRef
    amount: int
    currency: str
    expires_us: int | None = None
    memo: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    actor: str = ""

    operation = "create_hold"

    def body(self) -> dict:
        return {"account": canonical(self.account), "amount": self.amount, "currency": self.currency,
                "expires_us": self.expires_us, "memo": self.memo, "metadata": dict(self.metadata)}


@dataclass(frozen=True)
class CaptureHold:
    tenant_id: str
    request_id: str
    hold_id: str
    amount: int
    destination: AccountRef
    final: bool = False
    memo: str = ""
    actor: str = ""

    operation = "capture_hold"

    def body(self) -> dict:
        return {"hold_id": self.hold_id, "amount": self.amount, "destination": canonical(self.destination),
                "final": self.final, "memo": self.memo}


@dataclass(frozen=True)
class ReleaseHold:
    tenant_id: str
    request_id: str
    hold_id: str
    reason: str = ""
    actor: str = ""

    operation = "release_hold"

    def body(self) -> dict:
        return {"hold_id": self.hold_id, "reason": self.reason}
