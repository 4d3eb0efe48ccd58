"""The tenant scope every transaction names, as the row-security policies will read it, and the settings
that choose the roles."""

from __future__ import annotations

import inspect

import pytest

from tally.config import ConfigError, Settings
from tally.storage.uow import Scope, UnitOfWork, scope_setting


@pytest.mark.parametrize(("scope", "setting"), [
    (Scope.SYSTEM, "*"),
    ({"acme"}, "acme"),
    (["b", "a", "b"], "a,b"),  # sorted, each once
    (frozenset({"t-1", "t_2"}), "t-1,t_2"),
    ({"", "b", "a"}, ",a,b"),  # "": the audit rows of unidentified callers
    ({""}, ","),  # those alone: "," splits into two "" (an empty setting would match nothing)
])
def test_scope_setting(scope, setting):
    assert scope_setting(scope) == setting


@pytest.mark.parametrize(("scope", "error"), [
    ("acme", TypeError),  # a bare string is a collection of characters: refused, not read as {"a", "c", ...}
    (b"acme", TypeError),
    (None, TypeError),
    (set(), ValueError),  # names nobody: a bug, not a scope
    ({"a,b"}, ValueError),  # would widen the scope to two tenants
    ({"*"}, ValueError),  # would widen it to all
    ({1}, ValueError),
])
def test_scope_setting_refuses_what_the_policy_could_misread(scope, error):
    with pytest.raises(error):
        scope_setting(scope)


def test_every_transaction_kind_requires_a_scope():
    for method in (UnitOfWork.write, UnitOfWork.read, UnitOfWork.append):
        parameter = inspect.signature(method).parameters["tenants"]
        assert parameter.default is inspect.Parameter.empty, method.__name__
        assert list(inspect.signature(method).parameters)[:3] == ["self", "tenants", "work"]


def test_role_settings():
    settings = Settings.from_env({"TALLY_DATABASE_URL": "postgresql+psycopg://tally_app@db/tally",
                                  "TALLY_MIGRATE_DATABASE_URL": "postgresql+psycopg://tally_owner@db/tally",
                                  "TALLY_SERVICE_ROLE": "tally_app"})
    assert (settings.service_role, settings.migrate_database_url) == (
        "tally_app", "postgresql+psycopg://tally_owner@db/tally")
    assert Settings.from_env({}).service_role == "" and Settings.from_env({}).migrate_database_url == ""
    for bad in ("Tally", "tally app", "tally;drop", "1tally", "x" * 64):
        with pytest.raises(ConfigError, match="TALLY_SERVICE_ROLE"):
            Settings.from_env({"TALLY_SERVICE_ROLE": bad})
