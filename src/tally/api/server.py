"""The gRPC server: Tally's services, standard health, reflection and tracing; TLS (and mutual TLS) when
configured, plaintext otherwise."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tally import telemetry
from tally.api.account_servicer import AccountServicer
from tally.api.accounting_servicer import AccountingServicer
from tally.api.auth_interceptor import AuthInterceptor
from tally.api.bookkeeping_servicer import BookkeepingServicer
from tally.api.control_servicer import ControlServicer
from tally.api.day_servicer import DayServicer
from tally.api.settlement_servicer import SettlementServicer
from tally.api.tls import load_tls, server_credentials
from tally.api.webhook_servicer import WebhookServicer
from tally.config import ConfigError
from tally.service.container import Services
from tally.v1 import (
    account_service_pb2,
    account_service_pb2_grpc,
    accounting_service_pb2,
    accounting_service_pb2_grpc,
    bookkeeping_service_pb2,
    bookkeeping_service_pb2_grpc,
    control_service_pb2,
    control_service_pb2_grpc,
    day_service_pb2,
    day_service_pb2_grpc,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)

SERVICE_NAMES = (
    accounting_service_pb2.DESCRIPTOR.services_by_name["AccountingService"].full_name,
    account_service_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    bookkeeping_service_pb2.DESCRIPTOR.services_by_name["BookkeepingService"].full_name,
    webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
    day_service_pb2.DESCRIPTOR.services_by_name["DayService"].full_name,
    settlement_service_pb2.DESCRIPTOR.services_by_name["SettlementService"].full_name,
    control_service_pb2.DESCRIPTOR.services_by_name["ControlService"].full_name,
)
MESSAGE_SIZE_BYTES_MAX = 4 * 1024 * 1024


class GrpcServer:
    def __init__(self, services: Services) -> None:
        settings = services.settings
        tls = load_tls(settings)  # before anything listens: a bad file is a ConfigError
        self.grace_s = settings.shutdown_grace_s
        self.server = grpc.aio.server(
            interceptors=[*telemetry.server_interceptors(settings.otel_exporter),
                          AuthInterceptor(services.authenticator, services.audit, services.clock)],
            maximum_concurrent_rpcs=settings.rpc_concurrency_max,
            options=[("grpc.max_receive_message_length", MESSAGE_SIZE_BYTES_MAX),
                     ("grpc.so_reuseport", int(settings.reuse_port))],
        )
        accounting_service_pb2_grpc.add_AccountingServiceServicer_to_server(AccountingServicer(services), self.server)
        account_service_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(services), self.server)
        bookkeeping_service_pb2_grpc.add_BookkeepingServiceServicer_to_server(BookkeepingServicer(services),
                                                                             self.server)
        webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(
            WebhookServicer(services.webhooks, services.dispatcher), self.server)
        day_service_pb2_grpc.add_DayServiceServicer_to_server(DayServicer(services), self.server)
        settlement_service_pb2_grpc.add_SettlementServiceServicer_to_server(SettlementServicer(services), self.server)
        control_service_pb2_grpc.add_ControlServiceServicer_to_server(ControlServicer(services.controls), self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server)
        self.tls, self.mutual_tls = tls is not None, tls is not None and tls.mutual
        try:
            if tls is None:
                self.port = self.server.add_insecure_port(settings.listen_address)
            else:
                self.port = self.server.add_secure_port(settings.listen_address, server_credentials(tls))
        except RuntimeError:  # gRPC's "Failed to bind": taken, or not an address of this machine
            self.port = 0
        if self.port == 0:
            raise ConfigError(f"TALLY_LISTEN_ADDRESS (or --listen) {settings.listen_address!r}: cannot listen there "
                              "(in use, or not an address of this machine)")

    async def start(self) -> None:
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self) -> None:
        """Health turns NOT_SERVING first, so balancers stop sending; then in-flight calls drain."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.grace_s)

    async def wait(self) -> None:
        await self.server.wait_for_termination()
