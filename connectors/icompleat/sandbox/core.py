"""The sandbox's tenants and companies, and the core every operation module builds on.

Tenant, company, custom field and transaction ids are GUID strings compared case-insensitively,
as iCompleat does; record codes are compared exactly. Every public operation of the state takes
the one re-entrant lock, so tests and checkers may call it from any thread while the server runs.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.icompleat.routes import REFERENCE_APIS
from connectors.icompleat.sandbox.faults import FaultBoard, RequestLog
from connectors.icompleat.sandbox.persist import MemoryStore, Store
from connectors.icompleat.sandbox.store import RecordSet, Tokens
from connectors.icompleat.sandbox.wire import BAD_USER, Record, reject, unknown_company
from sync.foundation.errors import ConfigError
from sync.foundation.secrets import REDACTOR, Secret

DEFAULT_TOKEN_TTL = 3600.0
DEFAULT_USER_NAME = "Sandbox User"


@dataclass
class CustomField:
    """One custom field definition and its list of values."""

    id: str
    definition: Record  # Name, Type, Mandatory, Active
    values: RecordSet

    def summary(self) -> Record:
        """The list shape: ``{Id, Name}``."""
        return {"Id": self.id, "Name": self.definition["Name"]}

    def detail(self) -> Record:
        """The detail shape, with its values."""
        return {"Id": self.id, **self.definition, "Values": list(self.values)}


@dataclass(frozen=True)
class Endpoint:
    """Where approved transactions of one type are pushed, and the token sent with them."""

    url: str
    token: Secret = field(repr=False)


@dataclass
class Company:
    """One company of a tenant and all of its reference data."""

    id: str
    name: str
    refs: dict[str, RecordSet]
    fields: dict[str, CustomField] = field(default_factory=dict)
    webhooks: dict[str, Endpoint] = field(default_factory=dict)

    def ref(self) -> dict[str, Any]:
        """``{Id, Name}`` as lists and transactions show a company."""
        return {"Id": self.id, "Name": self.name}


@dataclass
class Tenant:
    """One tenant: its key, companies, users and transactions."""

    id: str
    name: str
    key: Secret = field(repr=False)
    companies: dict[str, Company] = field(default_factory=dict)
    users: dict[str, Record] = field(default_factory=dict)
    transactions: dict[str, Record] = field(default_factory=dict)
    tx_order: dict[str, int] = field(default_factory=dict)  # creation order, for lists


def fold(value: str) -> str:
    """The comparison form of a GUID or tenant id."""
    return value.strip().casefold()


def default_user_id(tenant_id: str) -> str:
    """The id of the tenant's built-in user (stable across restarts)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"icompleat-sandbox-user:{fold(tenant_id)}"))


def ref_scope(tenant_id: str, company_id: str, api: str) -> str:
    """The store scope of one company's list of one kind."""
    return f"ref:{fold(tenant_id)}:{fold(company_id)}:{api}"


class StateCore:
    """Tenants, companies, keys, the lock, the store, tokens, faults and the request log."""

    def __init__(self, *, store: Store | None = None, token_ttl: float = DEFAULT_TOKEN_TTL,
                 clock: Callable[[], float] = time.time, seed: int | None = None) -> None:
        self._lock = threading.RLock()
        self.store: Store = store or MemoryStore()
        self.token_ttl = token_ttl
        self.clock = clock
        self.tenants: dict[str, Tenant] = {}
        self.tokens = Tokens(self.store)
        self.faults = FaultBoard(seed)
        self.log = RequestLog()

    def add_tenant(self, tenant_id: str, api_key: str | Secret, company_ids: Sequence[str],
                   *, name: str | None = None) -> Tenant:
        """Register a tenant with its key and companies (data already in the store is loaded)."""
        key = api_key if isinstance(api_key, Secret) else Secret(api_key, origin="sandbox")
        if not key or not tenant_id or not company_ids:
            raise ConfigError("a sandbox tenant needs an id, a key and at least one company",
                              key="--tenant-id")
        REDACTOR.add(key.reveal())
        with self._lock:
            tenant = Tenant(tenant_id, name or f"Sandbox tenant {tenant_id[:8]}", key)
            user_id = default_user_id(tenant_id)
            tenant.users[fold(user_id)] = {"Id": user_id, "Name": DEFAULT_USER_NAME}
            for n, company_id in enumerate(company_ids, start=1):
                tenant.companies[fold(company_id)] = self._new_company(
                    tenant_id, company_id, f"Sandbox company {n}")
            self.tenants[fold(tenant_id)] = tenant
            self._loaded(tenant)
            return tenant

    def _new_company(self, tenant_id: str, company_id: str, name: str) -> Company:
        refs = {api: RecordSet(ref_scope(tenant_id, company_id, api), self.store)
                for api, *_ in REFERENCE_APIS}
        return Company(company_id, name, refs)

    def _loaded(self, tenant: Tenant) -> None:
        """Hook: load the tenant's other data from the store (custom fields, transactions)."""

    def tenant(self, tenant_id: str | None) -> Tenant | None:
        """The tenant, or None when unknown."""
        return self.tenants.get(fold(tenant_id or ""))

    def get_tenant(self, tenant_id: str) -> Tenant:
        """The tenant; KeyError naming it when unknown (for Python callers)."""
        tenant = self.tenant(tenant_id)
        if tenant is None:
            raise KeyError(f"no sandbox tenant {tenant_id!r}")
        return tenant

    def company(self, tenant_id: str, company_id: str | None) -> Company:
        """The company; ErrorCode 2 when the tenant does not have it."""
        company = self.get_tenant(tenant_id).companies.get(fold(company_id or ""))
        if company is None:
            raise unknown_company(str(company_id))
        return company

    def check_user(self, tenant: Tenant, user_id: str | None) -> None:
        """ErrorCode 3 unless ``user_id`` is None or a user of ``tenant``."""
        if user_id is not None and fold(user_id) not in tenant.users:
            raise reject(BAD_USER, f"user {user_id!r} is not a user of this tenant; send NULL "
                                   "or a user id of the tenant")

    def key_matches(self, tenant: Tenant, presented: str | None) -> bool:
        """Constant-time comparison of the presented key with the tenant's key."""
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode(), tenant.key.reveal().encode())

    def rotate_key(self, tenant_id: str, new_key: str) -> None:
        """Regenerate the tenant's key: the old one is refused from now on."""
        REDACTOR.add(new_key)
        with self._lock:
            self.get_tenant(tenant_id).key = Secret(new_key, origin="sandbox key rotation")

    def now(self) -> float:
        """The sandbox clock (epoch seconds); tests may replace ``clock``."""
        return self.clock()
