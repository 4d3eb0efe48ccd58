"""Posting: business flows in, vouchers written. Handlers, the pipeline and its batch writer, holds, refunds,
idempotency, events and hold expiry."""
