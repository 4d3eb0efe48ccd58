"""Which tenant a call acts for. Until credentials carry it, the `x-tenant-id` metadata names it."""

from __future__ import annotations

import grpc

from tally.domain.fields import check_tenant

TENANT_HEADER = "x-tenant-id"


def tenant_of(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == TENANT_HEADER:
            return check_tenant(value)
    return check_tenant("")
