"""Who may do what: roles, the permissions each grants, and the principal a credential proves."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tally.domain.errors import ErrorKind, LedgerError


class Permission(enum.Enum):
    READ = "read"  # balances, statements, vouchers, holds, streams, trial balance
    POST = "post"  # business flows, holds
    OPERATE = "operate"  # accounts, reversals, adjustments, verification
    ADMIN = "admin"  # keys, rule sets
    AUDIT = "audit"  # the audit log (who did what)


class Role(enum.Enum):
    READER = "reader"
    POSTER = "poster"
    OPERATOR = "operator"
    ADMIN = "admin"
    AUDITOR = "auditor"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.READ}),
    Role.POSTER: frozenset({Permission.READ, Permission.POST}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.POST, Permission.OPERATE}),
    Role.ADMIN: frozenset(Permission),  # the audit log included: the tenant's administrator answers for it
    # Reads the books and the audit log; changes nothing.
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),
}


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    actor: str  # the key id or the token's subject
    role: Role
    credential: str  # "api_key" or "jwt"

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            raise LedgerError(ErrorKind.PERMISSION_DENIED, "ROLE_NOT_ALLOWED",
                              f"role {self.role.value} may not {permission.value}", permission=permission.value)


_SERVICE = "/tally.v1."
# Every RPC and the permission it needs; an RPC missing here is refused, so a new one must be added.
METHOD_PERMISSIONS: dict[str, Permission] = {
    **{f"{_SERVICE}AccountService/{m}": Permission.READ
       for m in ("GetAccount", "ListAccounts", "GetBalance", "BatchGetBalances", "ListEntries", "GetAccountSecurity")},
    **{f"{_SERVICE}AccountService/{m}": Permission.OPERATE
       for m in ("CreateAccount", "UpdateAccount", "MergeAccounts", "SetAccountSecurity")},
    **{f"{_SERVICE}AccountingService/{m}": Permission.READ
       for m in ("GetVoucher", "ListVouchers", "GetHold", "ListHolds", "StreamEvents", "StreamBalanceChanges")},
    **{f"{_SERVICE}AccountingService/{m}": Permission.POST
       for m in ("Post", "PostBatch", "CreateHold", "CaptureHold", "ReleaseHold")},
    f"{_SERVICE}AccountingService/ReverseVoucher": Permission.OPERATE,
    **{f"{_SERVICE}BookkeepingService/{m}": Permission.READ for m in ("GetTrialBalance", "GetRuleSet")},
    f"{_SERVICE}BookkeepingService/VerifyChain": Permission.OPERATE,
    f"{_SERVICE}BookkeepingService/AuditLedger": Permission.OPERATE,
    f"{_SERVICE}BookkeepingService/ListAuditLog": Permission.AUDIT,
    f"{_SERVICE}BookkeepingService/ValidateRuleSet": Permission.ADMIN,
    # Webhook subscriptions send the tenant's events out: managed by operators; readers see their state.
    **{f"{_SERVICE}WebhookService/{m}": Permission.READ for m in ("GetWebhook", "ListWebhooks", "ListDeliveries")},
    **{f"{_SERVICE}WebhookService/{m}": Permission.OPERATE
       for m in ("CreateWebhook", "UpdateWebhook", "DeleteWebhook", "RotateWebhookSecret", "ReplayWebhook",
                 "Redeliver")},
    **{f"{_SERVICE}DayService/{m}": Permission.READ
       for m in ("GetAccountingDay", "ListAccountingDays", "ListClosingBalances", "ListStatements",
                 "GetStatement", "ListSummaries", "ListSummaryDetail", "ExportGeneralLedger")},
    f"{_SERVICE}DayService/CloseAccountingDay": Permission.OPERATE,
    **{f"{_SERVICE}SettlementService/{m}": Permission.READ
       for m in ("GetReconciliation", "ListReconciliationItems", "ExportPayoutBatch", "GetPayoutBatch", "ListPayouts")},
    f"{_SERVICE}SettlementService/RequestPayout": Permission.POST,
    **{f"{_SERVICE}SettlementService/{m}": Permission.OPERATE
       for m in ("ImportStatement", "ResolveItem", "LinkBankAccount", "UpdateBankAccountStatus", "CreatePayoutBatches",
                 "SendPayoutBatch", "SettlePayoutBatch", "ReturnPayout")},
    f"{_SERVICE}ControlService/GetAccountControls": Permission.READ,
    f"{_SERVICE}ControlService/SetAccountControls": Permission.OPERATE,
}
# Open to anyone: load balancers probe health, tools discover the API.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
