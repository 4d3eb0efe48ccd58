"""API conventions of the tally.v1 protos, checked on the descriptors of the generated modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, MethodDescriptor

from tally.v1 import (
    account_service_pb2,
    accounting_service_pb2,
    bookkeeping_service_pb2,
    flows_pb2,
    types_pb2,
)

ROOT = Path(__file__).resolve().parents[2]
GENERATED_MODULES = (account_service_pb2, accounting_service_pb2, bookkeeping_service_pb2, flows_pb2, types_pb2)
SERVICES = (
    accounting_service_pb2.DESCRIPTOR.services_by_name["AccountingService"],
    account_service_pb2.DESCRIPTOR.services_by_name["AccountService"],
    bookkeeping_service_pb2.DESCRIPTOR.services_by_name["BookkeepingService"],
)
# RPCs that change state and so must carry an idempotency key.
MUTATING_RPCS = {"Post", "ReverseVoucher", "CreateAccount", "UpdateAccount", "CreateHold", "CaptureHold",
                 "ReleaseHold", "MergeAccounts", "SetAccountSecurity"}
# Batches carry one idempotency key per item: the repeated field's message must have request_id.
BATCH_RPCS = {"PostBatch": "requests"}
# Verify*/Audit* run the ledger audit: what it changes (accounts marked inconsistent, the checkpoint) a repeat
# leaves as it is, so it needs no idempotency key.
READ_ONLY_PREFIXES = ("Get", "BatchGet", "List", "Stream", "Validate", "Verify", "Audit")

METHODS: dict[str, MethodDescriptor] = {m.name: m for s in SERVICES for m in s.methods}


def _load_generator():
    path = ROOT / "scripts" / "gen_protos.py"
    spec = importlib.util.spec_from_file_location("tally_gen_protos", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _field(message: Descriptor, name: str, type_: int) -> FieldDescriptor:
    field = message.fields_by_name.get(name)
    assert field is not None, f"{message.full_name} has no field {name!r}"
    assert field.type == type_, f"{message.full_name}.{name} has type {field.type}, expected {type_}"
    assert not field.is_repeated, f"{message.full_name}.{name} must not be repeated"
    return field


def _all_enums() -> list[EnumDescriptor]:
    enums: list[EnumDescriptor] = []

    def walk(message: Descriptor) -> None:
        enums.extend(message.enum_types)
        for nested in message.nested_types:
            walk(nested)

    for module in GENERATED_MODULES:
        enums.extend(module.DESCRIPTOR.enum_types_by_name.values())
        for message in module.DESCRIPTOR.message_types_by_name.values():
            walk(message)
    return enums


def test_generated_code_is_up_to_date():
    problems = _load_generator().check()
    assert problems == [], "src/tally/v1 is stale; run `python scripts/gen_protos.py`:\n" + "\n".join(
        problems
    )


def test_mutating_rpcs_are_exactly_the_non_read_rpcs():
    missing = MUTATING_RPCS - METHODS.keys()
    assert not missing, f"mutating RPCs not found in the services: {sorted(missing)}"
    # Any RPC that is not a Get*/List* read is treated as mutating, so a new write RPC is checked as well.
    unclassified = {n for n in METHODS if not n.startswith(READ_ONLY_PREFIXES)} - MUTATING_RPCS - BATCH_RPCS.keys()
    assert not unclassified, (
        f"RPCs {sorted(unclassified)} are neither Get*/List* reads nor listed in MUTATING_RPCS; "
        "add them to MUTATING_RPCS (they then need a request_id) or rename them"
    )


@pytest.mark.parametrize(
    "method",
    sorted(MUTATING_RPCS | {n for n in METHODS if not n.startswith(READ_ONLY_PREFIXES)} - BATCH_RPCS.keys()),
)
def test_mutating_request_has_request_id(method: str):
    assert method in METHODS, f"RPC {method} not found"
    _field(METHODS[method].input_type, "request_id", FieldDescriptor.TYPE_STRING)


@pytest.mark.parametrize("method", sorted(BATCH_RPCS))
def test_batch_items_have_request_id(method: str):
    items = METHODS[method].input_type.fields_by_name[BATCH_RPCS[method]]
    assert items.is_repeated and items.message_type is not None, f"{method}.{BATCH_RPCS[method]}"
    _field(items.message_type, "request_id", FieldDescriptor.TYPE_STRING)


LIST_RPCS = sorted(n for n in METHODS if n.startswith("List"))


def test_there_are_list_rpcs():
    assert {"ListAccounts", "ListEntries", "ListVouchers"} <= set(LIST_RPCS)


@pytest.mark.parametrize("method", LIST_RPCS)
def test_list_rpc_is_paginated(method: str):
    rpc = METHODS[method]
    _field(rpc.input_type, "page_size", FieldDescriptor.TYPE_INT32)
    _field(rpc.input_type, "page_token", FieldDescriptor.TYPE_STRING)
    _field(rpc.output_type, "next_page_token", FieldDescriptor.TYPE_STRING)


ENUMS = _all_enums()


def test_there_are_enums():
    assert {"AccountType", "Side", "AccountStatus", "FloorPolicy"} <= {e.name for e in ENUMS}


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.full_name)
def test_enum_zero_value_is_unspecified(enum: EnumDescriptor):
    zero = enum.values_by_number.get(0)
    assert zero is not None, f"{enum.full_name} has no zero value"
    assert zero.name.endswith("_UNSPECIFIED"), (
        f"{enum.full_name} zero value {zero.name} must end in _UNSPECIFIED"
    )
