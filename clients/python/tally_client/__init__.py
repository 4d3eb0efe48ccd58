"""tally-client: a typed Python client for the Tally ledger (grpcio and protobuf only).

    from tally_client import TallyClient, pb
    with TallyClient("localhost:50051", api_key) as tally:
        tally.accounting.post(pb.accounting.PostRequest(...))
"""

from types import SimpleNamespace

from tally_client._gen import account_service_pb2, accounting_service_pb2, bookkeeping_service_pb2, flows_pb2, types_pb2
from tally_client.client import RETRIED_METHODS, TallyClient, new_request_id
from tally_client.errors import TallyError
from tally_client.retry import RETRYABLE_CODES, RetryPolicy
from tally_client.streams import ResumableStream

# The message modules: pb.accounting.PostRequest, pb.flows.TransferFlow, pb.types.AccountRef ...
pb = SimpleNamespace(accounts=account_service_pb2, accounting=accounting_service_pb2,
                     bookkeeping=bookkeeping_service_pb2, flows=flows_pb2, types=types_pb2)

__all__ = ["RETRIED_METHODS", "RETRYABLE_CODES", "ResumableStream", "RetryPolicy", "TallyClient", "TallyError",
           "new_request_id", "pb"]
__version__ = "0.1.0"
