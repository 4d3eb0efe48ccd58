"""Tokens, stream shares and the database role, through the real server: JWT claims that cannot be stored
and tokens that live too long are refused at authentication (and audited); RS256, ES256 and EdDSA tokens
verify with keys from a PEM and a JWKS file; one tenant or one key cannot take every stream slot; a
PostgreSQL role that bypasses row security is warned about, and refused in production."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import grpc
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tally.config import ConfigError
from tally.domain.auth import Role
from tally.service.auth import keys
from tally.service.posting.pipeline import now_us
from tally.streaming import AFTER_SEQUENCE_HEADER
from tally.v1 import account_service_pb2 as acc_pb
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import types_pb2
from tests.e2e.conftest import Server, TenantKeys, e2e_settings, error_info, module_server, running_server, wait_until
from tests.e2e.test_e2e_wire_edges import audit_rows, bearer

C = grpc.StatusCode
ISSUER, AUDIENCE = "https://idp.test", "tally"
SECRET = "wire-edges-secret-of-at-least-32-bytes"
TENANT = "tokens"
SIGNERS = {"rsa": rsa.generate_private_key(65537, 2048), "ec": ec.generate_private_key(ec.SECP256R1()),
           "ed": ed25519.Ed25519PrivateKey.generate(), "stranger": rsa.generate_private_key(65537, 2048)}


def _public_pem(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def srv(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("jwt-keys")
    (folder / "rsa.pem").write_bytes(_public_pem(SIGNERS["rsa"]))
    jwks = {"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(SIGNERS["ec"].public_key())), "kid": "ec-1"},
                     {**json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(SIGNERS["ed"].public_key())), "kid": "ed-1"}]}
    (folder / "jwks.json").write_text(json.dumps(jwks))
    settings = dict(auth_cache_ttl_s=0, jwt_secret=SECRET, jwt_algorithms="HS256,RS256,ES256,EdDSA",
                    jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_public_key_file=str(folder / "rsa.pem"),
                    jwt_jwks_file=str(folder / "jwks.json"), jwt_lifetime_max_s=3600,
                    stream_subscribers_per_tenant_max=3, stream_subscribers_per_key_max=2)
    with module_server(request, tmp_path_factory, **settings) as server:
        TenantKeys.for_target(server.target).key_for(TENANT)  # the tenant exists
        yield server


def claims(**changes) -> dict:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-billing", "tenant_id": TENANT, "role": "admin",
            "exp": now + 600}
    return {k: v for k, v in (base | changes).items() if v is not None}


def hs256(**changes) -> str:
    return jwt.encode(claims(**changes), SECRET, algorithm="HS256")


def list_accounts(srv: Server, token: str):
    return srv.accounts(srv.channel()).ListAccounts(acc_pb.ListAccountsRequest(), metadata=bearer(token))


TOKEN_REFUSALS = [
    # A subject with NUL made every post fail with a "retry" answer, and kept its refusals out of the audit log.
    (lambda: hs256(sub="svc\x00evil"), "TOKEN_CLAIM_INVALID"),
    (lambda: hs256(sub="svc\nforged-log-line"), "TOKEN_CLAIM_INVALID"),
    (lambda: hs256(sub="s" * 200), "TOKEN_CLAIM_INVALID"),
    (lambda: hs256(exp=1e300), "TOKEN_LIFETIME_TOO_LONG"),
    (lambda: hs256(exp=int(time.time()) + 7200), "TOKEN_LIFETIME_TOO_LONG"),  # the server's bound is an hour
    (lambda: jwt.encode(claims(), SIGNERS["stranger"], algorithm="RS256"), "TOKEN_SIGNATURE_INVALID"),
    (lambda: jwt.encode(claims(), SIGNERS["ec"], algorithm="ES256", headers={"kid": "nope"}), "TOKEN_KEY_UNKNOWN"),
    (lambda: jwt.encode(claims(), SIGNERS["rsa"], algorithm="PS256"), "TOKEN_ALGORITHM_NOT_ALLOWED"),
    (lambda: hs256(iss="https://evil.test"), "TOKEN_ISSUER_INVALID"),
]


@pytest.mark.parametrize(("mint", "reason"), TOKEN_REFUSALS,
                         ids=["sub-nul", "sub-newline", "sub-200", "exp-1e300", "exp-2h", "rs256-stranger",
                              "es256-unknown-kid", "ps256-not-listed", "wrong-issuer"])
def test_a_token_is_refused_at_authentication_and_audited(srv: Server, mint, reason: str) -> None:
    token = mint()
    with pytest.raises(grpc.RpcError) as caught:
        srv.accounting(srv.channel()).Post(post_pb.PostRequest(request_id="never"), metadata=bearer(token))
    assert error_info(caught.value)[:2] == (C.UNAUTHENTICATED, reason)
    rows = [r for r in audit_rows(srv, outcome=f"denied:{reason}") if r.action == "Post"]
    assert rows and rows[-1].tenant_id == "" and rows[-1].request_id == ""


@pytest.mark.parametrize(("signer", "algorithm", "kid"), [("rsa", "RS256", None), ("ec", "ES256", "ec-1"),
                                                          ("ed", "EdDSA", "ed-1"), ("ed", "EdDSA", None)])
def test_asymmetric_tokens_from_the_pem_and_jwks_files_are_accepted(srv: Server, signer, algorithm, kid) -> None:
    token = jwt.encode(claims(sub=f"svc-{algorithm}"), SIGNERS[signer], algorithm=algorithm,
                       headers={"kid": kid} if kid else None)
    list_accounts(srv, token)
    request = acc_pb.CreateAccountRequest(request_id=f"create-{algorithm}-{kid}", code=f"by-{algorithm}-{kid}",
                                          type=types_pb2.ACCOUNT_TYPE_DEPOSIT, currency="USD")
    srv.accounts(srv.channel()).CreateAccount(request, metadata=bearer(token))
    [row] = audit_rows(srv, request_id=request.request_id)
    assert (row.actor, row.outcome) == (f"jwt:svc-{algorithm}", "ok")


# ------------------------------------------------------------------------------------------ streams


def _open(srv: Server, token: str):
    """A StreamEvents call, once the server has admitted it (its initial metadata arrived), or its refusal."""
    call = srv.accounting(srv.channel()).StreamEvents(post_pb.StreamEventsRequest(), metadata=bearer(token))
    if AFTER_SEQUENCE_HEADER in dict(call.initial_metadata()):  # sent once the stream has its slot
        return call
    try:
        next(call)
    except grpc.RpcError as err:
        return error_info(err)[:2]
    pytest.fail("a stream without its initial metadata delivered an event")


def test_one_tenant_or_one_key_cannot_take_every_stream_slot(srv: Server) -> None:
    """One tenant's reader key held all 1,000 slots and locked every other tenant out. Here: 3 per tenant,
    2 per key."""
    provisioner = TenantKeys.for_target(srv.target)
    tenant_keys = [keys.create_key(provisioner.uow, TENANT, Role.READER, f"s{i}", "tests", now_us).secret_key
                   for i in range(3)]
    first = [_open(srv, tenant_keys[0]) for _ in range(2)]
    assert all(isinstance(c, grpc.Call) for c in first)
    assert _open(srv, tenant_keys[0]) == (C.RESOURCE_EXHAUSTED, "STREAM_SUBSCRIBERS_PER_KEY_EXHAUSTED")
    second = _open(srv, tenant_keys[1])
    assert isinstance(second, grpc.Call)
    assert _open(srv, tenant_keys[2]) == (C.RESOURCE_EXHAUSTED, "STREAM_SUBSCRIBERS_PER_TENANT_EXHAUSTED")
    other = _open(srv, provisioner.key_for("streams-other"))  # another tenant is not locked out
    assert isinstance(other, grpc.Call)
    first[0].cancel()  # a closed stream gives its slot back
    wait_until(lambda: srv.app.services.hub.subscriber_count == 3, "the cancelled stream to free its slot")
    again = _open(srv, tenant_keys[2])
    assert isinstance(again, grpc.Call)
    refused = audit_rows(srv, outcome="error:RESOURCE_EXHAUSTED:STREAM_SUBSCRIBERS_PER_TENANT_EXHAUSTED")
    assert refused and refused[-1].actor == f"key:{tenant_keys[2].split('_')[1]}"
    for call in (first[1], second, other, again):
        call.cancel()


# ------------------------------------------------------------------------------------------ the database role


@pytest.mark.postgres
def test_a_role_that_bypasses_row_security_is_warned_about_and_refused_in_production(postgres_url, caplog) -> None:
    """The test PostgreSQL's own role is a superuser: row security does not bind it."""
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    engine.dispose()
    production = e2e_settings(postgres_url, env="production")
    with pytest.raises(ConfigError, match="TALLY_ENV=production: .* is a superuser"), running_server(production):
        pass
    with caplog.at_level(logging.WARNING, logger="tally"), running_server(e2e_settings(postgres_url)):
        pass
    assert [r for r in caplog.records if "row security does not bind it" in r.getMessage()]


def test_sqlite_has_no_role_to_bypass_anything(tmp_path, caplog) -> None:
    settings = dataclasses.replace(e2e_settings(f"sqlite:///{tmp_path / 'tally.db'}"), env="production")
    with caplog.at_level(logging.WARNING, logger="tally"), running_server(settings) as server:
        assert server.port
    assert not [r for r in caplog.records if "row security" in r.getMessage()]
