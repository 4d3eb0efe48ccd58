"""A failed call as one exception: the gRPC code, the ErrorInfo reason and metadata the server sent."""

from __future__ import annotations

import grpc

from tally_client._gen import rpc_status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
ERROR_INFO_TYPE = "google.rpc.ErrorInfo"


class TallyError(Exception):
    """`code` is a grpc.StatusCode; `reason` the stable UPPER_SNAKE reason ("" when the server sent none, e.g.
    a transport failure); `metadata` the ErrorInfo's key/value details; `attempts` how many tries were made."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "", metadata: dict[str, str] | None = None,
                 attempts: int = 1) -> None:
        super().__init__(f"{code.name}{f' {reason}' if reason else ''}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.attempts = attempts

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, attempts: int = 1) -> TallyError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = (error.details() if hasattr(error, "details") else str(error)) or ""
        reason, metadata = _error_info(error)
        return cls(code or grpc.StatusCode.UNKNOWN, message, reason, metadata, attempts)


def _error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = rpc_status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.type_url.rsplit("/", 1)[-1] == ERROR_INFO_TYPE:
                info = rpc_status_pb2.ErrorInfo.FromString(detail.value)
                return info.reason, dict(info.metadata)
    return "", {}
