"""API keys for the benchmark's tenants, created in the server's database the way an operator's
`tally tenants create` and `tally keys create` would: as the schema owner (or the superuser), since the
service role may not."""

from __future__ import annotations

import contextlib

from tally.domain.auth import Role
from tally.domain.errors import LedgerError
from tally.service.auth import keys
from tally.service.posting.pipeline import now_us
from tally.storage.engine import make_engines
from tally.storage.uow import UnitOfWork


def tenant_key(database_url: str, tenant: str) -> str:
    engines = make_engines(database_url, pool_size=1)
    try:
        uow = UnitOfWork(engines)
        with contextlib.suppress(LedgerError):  # already there from an earlier set-up
            keys.create_tenant(uow, tenant, f"benchmark tenant {tenant}", now_us)
        return keys.create_key(uow, tenant, Role.ADMIN, "bench", "bench", now_us).secret_key
    finally:
        engines.dispose()


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)
