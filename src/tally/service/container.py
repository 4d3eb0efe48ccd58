"""What the handlers need, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tally.config import Settings
from tally.service.auth.audit import AuditLog
from tally.service.auth.authn import Authenticator
from tally.service.books.auditor import Auditor
from tally.service.books.days import DayBook
from tally.service.books.statements import StatementBook
from tally.service.books.summaries import SummaryBook
from tally.service.controls import ControlBook
from tally.service.hierarchy import Hierarchy
from tally.service.posting.expiry import HoldExpirer
from tally.service.posting.handlers import Posting
from tally.service.posting.pipeline import PostingPipeline
from tally.service.queries import Queries
from tally.service.settlement.payouts import Payouts
from tally.service.settlement.reconciliation import Reconciliation
from tally.service.webhooks.manage import WebhookAdmin
from tally.storage.uow import UnitOfWork
from tally.streaming.hub import EventHub
from tally.streaming.webhooks.dispatcher import WebhookDispatcher


@dataclass(frozen=True)
class Services:
    settings: Settings
    uow: UnitOfWork
    pipeline: PostingPipeline
    queries: Queries
    clock: Callable[[], int]
    hub: EventHub
    posting: Posting
    expirer: HoldExpirer
    authenticator: Authenticator
    audit: AuditLog
    auditor: Auditor
    hierarchy: Hierarchy
    webhooks: WebhookAdmin
    dispatcher: WebhookDispatcher
    days: DayBook
    statements: StatementBook
    summaries: SummaryBook
    reconciliation: Reconciliation
    payouts: Payouts
    controls: ControlBook
