"""The schema. Amounts are BigInteger (int64 on SQLite and PostgreSQL); times are integer microseconds
since the Unix epoch in UTC and accounting dates ISO strings, so both engines store them exactly."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from tally.storage.compact import Digest, PackedJson

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = 36  # UUID text
TENANT = 64


def matchable(value: str | None) -> bool:
    """Whether a caller's value may be compared with stored text. No stored text holds NUL (text fields refuse
    it on the way in) and PostgreSQL refuses NUL in a text parameter, so a value with one matches nothing:
    it is answered like a value that does not exist, without asking the database."""
    return value is None or "\x00" not in value

accounts = Table(
    "accounts", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("code", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("type", String(24), nullable=False),
    Column("normal_side", String(8), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(12), nullable=False),
    Column("parent_id", String(ID), ForeignKey("accounts.id"), nullable=True),
    Column("credit_limit", BigInteger, nullable=False),
    Column("floor_policy", String(16), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "code"),
    CheckConstraint("credit_limit >= 0", name="credit_limit_non_negative"),
)
Index("ix_accounts_tenant_id_id", accounts.c.tenant_id, accounts.c.id)
Index("ix_accounts_tenant_id_parent_id", accounts.c.tenant_id, accounts.c.parent_id)  # a parent's children

balances = Table(
    "balances", metadata,
    # No foreign keys on the rows every posting writes (migration 0008): the writer reads each account it
    # posts to in the same transaction, and the ledger audit checks every reference.
    Column("account_id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("current", BigInteger, nullable=False),
    Column("locked", BigInteger, nullable=False),
    Column("previous_day", BigInteger, nullable=False),
    Column("last_date", String(10), nullable=False),
    Column("entry_count", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    CheckConstraint("locked >= 0", name="locked_non_negative"),
)

vouchers = Table(
    "vouchers", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("flow_type", String(32), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("rule_set_version", String(64), nullable=False),
    Column("accounting_date", String(10), nullable=False),
    Column("effective_us", BigInteger, nullable=False),
    Column("posted_us", BigInteger, nullable=False),
    Column("memo", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("reverses_id", String(ID), nullable=True),
    # 32 bytes each, read and written as hex (storage/compact.py, migration 0019).
    Column("previous_hash", Digest, nullable=False),
    Column("hash", Digest, nullable=False),
    UniqueConstraint("tenant_id", "sequence"),
)
Index("ix_vouchers_tenant_id_flow_type_sequence", vouchers.c.tenant_id, vouchers.c.flow_type,
      vouchers.c.sequence)
# A voucher is reversed at most once, enforced by the database as well as the code: a unique index of the
# reversals only (a constraint would index every voucher's NULL).
_REVERSALS_ONLY = vouchers.c.reverses_id.isnot(None)
Index("uq_vouchers_reverses_id", vouchers.c.reverses_id, unique=True, postgresql_where=_REVERSALS_ONLY,
      sqlite_where=_REVERSALS_ONLY)

voucher_lines = Table(
    "voucher_lines", metadata,
    # No primary key (migration 0019): a voucher's lines are found by `voucher_id`, whose index keeps one entry
    # per voucher however many lines (B-tree deduplication, which a unique index does not do), and a line is
    # unique by (account_id, entry_number); the writer numbers lines, the hash covers them.
    Column("voucher_id", String(ID), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("account_id", String(ID), nullable=False),
    Column("entry_number", BigInteger, nullable=False),
    Column("side", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("memo", Text, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("accounting_date", String(10), nullable=False),
    Column("posted_us", BigInteger, nullable=False),
    UniqueConstraint("account_id", "entry_number"),
    CheckConstraint("amount > 0", name="amount_positive"),
)
Index("ix_voucher_lines_voucher_id", voucher_lines.c.voucher_id)
# No index by date or time: an account's entries follow both, so the last entry at or before one is a binary
# search over (account_id, entry_number) (journal_repo.last_entry_where).

idempotency = Table(
    "idempotency", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("operation", String(32), nullable=False),
    # The fingerprint as its 32 bytes, body and result as packed JSON (storage/compact.py, migration 0019).
    Column("fingerprint", Digest, nullable=False),
    Column("body", PackedJson, nullable=False),
    Column("result", PackedJson, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    # Who asked, written in the request's own transaction: kept even if the audit log's last rows are lost.
    Column("actor", String(128), nullable=False, server_default=text("''")),
)

events = Table(
    "events", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("type", String(48), nullable=False),
    Column("account_id", String(ID), nullable=True),
    Column("voucher_id", String(ID), nullable=True),
    Column("hold_id", String(ID), nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

holds = Table(
    "holds", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("account_id", String(ID), ForeignKey("accounts.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("captured", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("request_id", String(128), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("memo", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("capture_voucher_ids", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    CheckConstraint("amount > 0 AND captured >= 0 AND captured <= amount", name="captured_within_amount"),
)
Index("ix_holds_tenant_id_account_id_status", holds.c.tenant_id, holds.c.account_id, holds.c.status)
Index("ix_holds_status_expires_us", holds.c.status, holds.c.expires_us)

# Running totals bounded by a limit across requests, e.g. everything refunded against one original
# payment. Checked and advanced in the same transaction as the vouchers they bound.
flow_caps = Table(
    "flow_caps", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("cap_key", String(200), primary_key=True),
    Column("used", BigInteger, nullable=False),
    Column("cap_limit", BigInteger, nullable=False),
    CheckConstraint("used >= 0 AND used <= cap_limit", name="used_within_limit"),
)

# One row per tenant: the last voucher and event sequence and the head of the voucher hash chain.
# Every write transaction updates it, which is what makes sequences follow commit order.
ledger_heads = Table(
    "ledger_heads", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("voucher_sequence", BigInteger, nullable=False),
    Column("event_sequence", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("accounting_date", String(10), nullable=False),
    Column("posted_us", BigInteger, nullable=False, server_default=text("0")),  # the tenant's last posting time
    # Moved by every write transaction of the tenant that wrote (migration 0021, storage/epochs.py).
    Column("epoch", BigInteger, nullable=False, server_default=text("0")),
)

tenants = Table(
    "tenants", metadata,
    Column("id", String(TENANT), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

# API keys: the secret is shown once at creation and stored only as a salted SHA-256 hash.
api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(TENANT), ForeignKey("tenants.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("salt", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
)
Index("ix_api_keys_tenant_id", api_keys.c.tenant_id)

# Append-only evidence of every mutating and every refused call.
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("tenant_id", String(TENANT), nullable=False),  # "" when the caller could not be identified
    Column("actor", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(96), nullable=False),
    Column("target", String(256), nullable=False),
    Column("outcome", String(96), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("peer", String(128), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    # Hash chain per tenant (migration 0009): each row's hash covers the previous row's and its own content.
    Column("previous_hash", String(64), nullable=False, server_default=text("''")),
    Column("hash", String(64), nullable=False, server_default=text("''")),
)
Index("ix_audit_log_tenant_id_id", audit_log.c.tenant_id, audit_log.c.id)

# The head of each tenant's audit-log hash chain: the last row's hash and how many rows the chain holds.
# The audit writer locks it while it appends, so one tenant's rows chain in id order whatever the process.
audit_heads = Table(
    "audit_heads", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("last_hash", String(64), nullable=False),
    Column("row_count", BigInteger, nullable=False),
)

# Where the ledger audit stopped last time, per tenant: the journal up to `voucher_sequence` (whose hash is
# `head_hash`) and the events up to `event_sequence` checked out, as did the audit log up to
# `audit_log_id`. `sums_digest` is a SHA-256 over the tenant's rows in audit_account_sums, so a routine
# audit trusts those sums only while they still match it.
audit_checkpoints = Table(
    "audit_checkpoints", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("voucher_sequence", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("event_sequence", BigInteger, nullable=False),
    Column("audit_log_id", BigInteger, nullable=False),
    Column("audit_log_hash", String(64), nullable=False),
    Column("audit_log_count", BigInteger, nullable=False),
    Column("sums_digest", String(64), nullable=False),
    Column("account_count", BigInteger, nullable=False),
    Column("findings", BigInteger, nullable=False),
    Column("full_us", BigInteger, nullable=False),  # when the last full audit finished
    Column("verified_us", BigInteger, nullable=False),
)

# Each account's journal as of its tenant's checkpoint: what its lines add up to.
audit_account_sums = Table(
    "audit_account_sums", metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("entry_count", BigInteger, nullable=False),  # lines (the last entry number)
    Column("line_sum", BigInteger, nullable=False),  # signed on the account's normal side
    Column("last_balance", BigInteger, nullable=False),  # the last line's balance_after
    Column("last_date", String(10), nullable=False),  # the last line's accounting date
    Column("previous_day", BigInteger, nullable=False),  # balance at the end of the day before last_date
)
Index("ix_audit_account_sums_tenant_id", audit_account_sums.c.tenant_id)

# Webhook subscriptions (migration 0013). Never deleted: DeleteWebhook sets status 'deleted'. `cursor` is the
# last event sequence acknowledged by the receiver (or passed over by the filter); `lease_owner` is the
# process delivering it until `lease_expires_us`. Secrets are encrypted (service/webhooks/secrets.py).
# `request_id`/`fingerprint`: the create request; `last_request_id`/`last_fingerprint`: the latest change.
webhooks = Table(
    "webhooks", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("event_types", Text, nullable=False),  # JSON list; empty: every type
    Column("account_ids", Text, nullable=False),  # JSON list; empty: every account
    Column("status", String(12), nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text, nullable=False),
    Column("previous_secret_expires_us", BigInteger, nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("retry_at_us", BigInteger, nullable=False),
    Column("lease_owner", String(64), nullable=False),
    Column("lease_expires_us", BigInteger, nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("last_request_id", String(128), nullable=False),
    Column("last_fingerprint", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "request_id"),
)
Index("ix_webhooks_tenant_id_status", webhooks.c.tenant_id, webhooks.c.status)

# Every delivery attempt, append-only.
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", String(ID), primary_key=True),  # time-ordered
    Column("tenant_id", String(TENANT), nullable=False),
    Column("webhook_id", String(ID), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("trigger", String(12), nullable=False),
    Column("delivered", Integer, nullable=False),  # 1 or 0
    Column("response_code", Integer, nullable=False),
    Column("latency_us", BigInteger, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)
Index("ix_webhook_deliveries_tenant_id_webhook_id_id", webhook_deliveries.c.tenant_id,
      webhook_deliveries.c.webhook_id, webhook_deliveries.c.id)
# Accounting days (migration 0014). A day's vouchers are the sequences after `after_sequence` through
# `last_sequence`: the ledger head's date never goes back, so one day's vouchers are one sequence range.
accounting_days = Table(
    "accounting_days", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("accounting_date", String(10), primary_key=True),
    Column("state", String(12), nullable=False),  # closing, closed
    Column("after_sequence", BigInteger, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("voucher_count", BigInteger, nullable=False),
    Column("accounts_closed", BigInteger, nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("closed_us", BigInteger, nullable=False),
    Column("event_sequence", BigInteger, nullable=False),  # the day.closed event (0 until closed)
    CheckConstraint("after_sequence <= last_sequence", name="sequence_range"),
)

# A closed day's postings per currency (its trial balance: debits equal credits) and per flow type.
day_currency_totals = Table(
    "day_currency_totals", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("accounting_date", String(10), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("debit_total", BigInteger, nullable=False),
    Column("credit_total", BigInteger, nullable=False),
    Column("line_count", BigInteger, nullable=False),
    CheckConstraint("debit_total = credit_total", name="balanced"),
)

day_flow_totals = Table(
    "day_flow_totals", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("accounting_date", String(10), primary_key=True),
    Column("flow_type", String(32), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("voucher_count", BigInteger, nullable=False),
    Column("amount_total", BigInteger, nullable=False),
    Column("summarized", Integer, nullable=False),  # 1: the rule set summarizes the flow (day_summary_lines)
    Column("summary_accounts", Text, nullable=False),  # the account code prefixes summarized, comma-separated
)

# The summary voucher of a summarized flow and currency on a closed day: one line per account and side, the
# exact sum of the detail lines. Its detail vouchers are the flow's in the day's sequence range.
day_summary_lines = Table(
    "day_summary_lines", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("accounting_date", String(10), primary_key=True),
    Column("flow_type", String(32), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("account_id", String(ID), primary_key=True),
    Column("side", String(8), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("line_count", BigInteger, nullable=False),
)

# Each account's balance at the end of each closed day that moved it; a day that did not move it keeps the
# last row before (so the closing balance at D is the account's last row at or before D).
day_closing_balances = Table(
    "day_closing_balances", metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("accounting_date", String(10), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("entry_count", BigInteger, nullable=False),
)
Index("ix_day_closing_balances_tenant_id_accounting_date", day_closing_balances.c.tenant_id,
      day_closing_balances.c.accounting_date)

# Interest accrued at each close for each account with an interest policy (migration 0014): the units the
# days since its last accrual earned on their closing balances, the fraction carried on (over
# `denominator`), what is accrued and not yet capitalized, and what this close capitalized.
interest_accruals = Table(
    "interest_accruals", metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("accounting_date", String(10), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance", BigInteger, nullable=False),  # the closing balance of accounting_date
    Column("days", Integer, nullable=False),
    Column("rate_bp", Integer, nullable=False),
    Column("denominator", Integer, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("carry", BigInteger, nullable=False),
    Column("accrued_open", BigInteger, nullable=False),
    Column("capitalized", BigInteger, nullable=False),
    CheckConstraint("units >= 0 AND carry >= 0 AND carry < denominator AND capitalized >= 0 AND accrued_open >= 0",
                    name="amounts"),
)
Index("ix_interest_accruals_tenant_id_accounting_date", interest_accruals.c.tenant_id,
      interest_accruals.c.accounting_date)
# Reconciliation (migration 0015): an imported statement of one account, its lines, and the items that
# match lines to the account's entries. Statements and lines never change; an item changes only when an
# operator resolves it.
recon_statements = Table(
    "recon_statements", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("account_id", String(ID), nullable=False),
    Column("statement_id", String(128), nullable=False),  # the counterparty's id of the statement
    Column("digest", String(64), nullable=False),  # SHA-256 of the file: the same file twice imports once
    Column("format", String(8), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("start_date", String(10), nullable=False),
    Column("end_date", String(10), nullable=False),
    Column("line_count", BigInteger, nullable=False),
    Column("closing_balance", BigInteger, nullable=True),
    Column("ledger_balance", BigInteger, nullable=False),  # the account after its last entry of the period
    Column("request_id", String(128), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "account_id", "statement_id"),
    UniqueConstraint("tenant_id", "account_id", "digest"),
)

recon_lines = Table(
    "recon_lines", metadata,
    Column("statement_row_id", String(ID), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("item_id", String(ID), nullable=False),
    Column("reference", String(256), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("value_date", String(10), nullable=False),
    Column("line_id", String(256), nullable=False),
    Column("description", String(256), nullable=False),
)

recon_items = Table(
    "recon_items", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("statement_row_id", String(ID), nullable=False),
    Column("account_id", String(ID), nullable=False),
    Column("position", Integer, nullable=False),  # order within the statement
    Column("state", String(16), nullable=False),
    Column("rule", String(16), nullable=False),
    Column("ours", BigInteger, nullable=False),
    Column("theirs", BigInteger, nullable=False),
    Column("entry_keys", Text, nullable=False),  # JSON list of "voucher_id:line_no"
    Column("resolution", String(16), nullable=False),
    Column("resolution_request_id", String(128), nullable=False),
    Column("voucher_ids", Text, nullable=False),  # JSON list
    Column("resolved_by", String(128), nullable=False),
    Column("resolved_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("statement_row_id", "position"),
)
Index("ix_recon_items_tenant_id_account_id", recon_items.c.tenant_id, recon_items.c.account_id)

# Payouts (migration 0015): merchants' linked bank accounts, payout instructions and the batches that
# carry them to the bank.
bank_accounts = Table(
    "bank_accounts", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("merchant", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("holder_name", String(140), nullable=False),
    Column("iban", String(34), nullable=False),
    Column("bic", String(11), nullable=False),
    Column("aba_routing", String(9), nullable=False),
    Column("account_number", String(34), nullable=False),
    Column("status", String(12), nullable=False),  # verified | unverified | disabled
    Column("request_id", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
Index("ix_bank_accounts_tenant_id_merchant", bank_accounts.c.tenant_id, bank_accounts.c.merchant)

payout_batches = Table(
    "payout_batches", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("bank_account_id", String(ID), nullable=False),  # one bank instruction per bank account
    Column("currency", String(3), nullable=False),
    Column("state", String(12), nullable=False),  # batched | sent | settled
    Column("payout_count", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("cutoff_us", BigInteger, nullable=False),
    Column("send_request_id", String(128), nullable=False),  # who is sending it ("" while nobody is)
    Column("send_voucher_id", String(ID), nullable=False),
    Column("sent_date", String(10), nullable=False),
    Column("expected_date", String(10), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
Index("ix_payout_batches_tenant_id_created_us", payout_batches.c.tenant_id, payout_batches.c.created_us)

payouts = Table(
    "payouts", metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("merchant", String(128), nullable=False),
    Column("bank_account_id", String(ID), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("state", String(12), nullable=False),  # requested | batched | sent | settled | returned | failed
    Column("batch_id", String(ID), nullable=False),
    Column("reason", String(256), nullable=False),
    Column("voucher_ids", Text, nullable=False),  # JSON list, one per state where money moved
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "request_id"),
    CheckConstraint("amount > 0", name="amount_positive"),
)
Index("ix_payouts_tenant_id_state_currency", payouts.c.tenant_id, payouts.c.state, payouts.c.currency)
Index("ix_payouts_batch_id", payouts.c.batch_id)

# Account structures (issue 21, migration 0017). A merged account keeps its row, closed: this says where its
# code leads now. Written once, by the merge.
account_merges = Table(
    "account_merges", metadata,
    Column("source_id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("target_id", String(ID), nullable=False),
    Column("voucher_id", String(ID), nullable=False),  # "" when the source held nothing to move
    Column("request_id", String(128), nullable=False),
    Column("merged_by", String(128), nullable=False),
    Column("merged_us", BigInteger, nullable=False),
)
Index("ix_account_merges_tenant_id_target_id", account_merges.c.tenant_id, account_merges.c.target_id)

# A credit account secured by a security-deposit account: the deposit keeps outstanding credit x 10,000 /
# ratio_bps; `bound` binds the credit limit to the deposit (deposit balance x ratio_bps / 10,000, computed
# when a posting is checked).
account_securities = Table(
    "account_securities", metadata,
    Column("credit_id", String(ID), primary_key=True),
    Column("tenant_id", String(TENANT), nullable=False),
    Column("deposit_id", String(ID), nullable=False),
    Column("ratio_bps", BigInteger, nullable=False),
    Column("bound", Integer, nullable=False),  # 1: the credit limit is bound to the deposit
    Column("request_id", String(128), nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    CheckConstraint("ratio_bps > 0 AND ratio_bps <= 10000", name="ratio_bps_within_whole"),
)
Index("ix_account_securities_tenant_id_deposit_id", account_securities.c.tenant_id, account_securities.c.deposit_id)
# Spending controls, team budgets and sweeps of an account (migration 0018): one row per controlled account,
# the controls as JSON (domain/controls.py). Cleared controls stay as a row of "{}": nothing deletes rows.
account_controls = Table(
    "account_controls", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("account_id", String(ID), primary_key=True),
    Column("controls", Text, nullable=False),
    Column("request_id", String(128), nullable=False),  # the last change's
    Column("updated_us", BigInteger, nullable=False),
)

# Spend per account, scope (own, team), window granularity and bucket: what velocity limits and team budgets
# count, advanced in the same write transaction as the vouchers that spend.
spend_counters = Table(
    "spend_counters", metadata,
    Column("tenant_id", String(TENANT), primary_key=True),
    Column("account_id", String(ID), primary_key=True),
    Column("scope", String(8), primary_key=True),
    Column("granularity", String(16), primary_key=True),
    Column("bucket_us", BigInteger, primary_key=True),
    Column("spent", BigInteger, nullable=False),
    CheckConstraint("spent >= 0", name="spent_not_negative"),
)
