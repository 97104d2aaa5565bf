"""The live state of a sandbox: every operation of the contract plus what checkers need.

:class:`SandboxState` is what ``SandboxServer.state`` returns. Tests and checkers read every
record (``records``), seed data (``seed``), arm faults (``faults``), read the request log
(``log``), rotate keys, approve transactions and inspect the posting-failures tray, from any
thread, while the server answers HTTP on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.icompleat.sandbox.core import Endpoint, fold
from connectors.icompleat.sandbox.customfields import CustomFieldOps
from connectors.icompleat.sandbox.references import ReferenceOps, kind_for
from connectors.icompleat.sandbox.transactions import TYPES
from connectors.icompleat.sandbox.tray import TrayOps
from connectors.icompleat.sandbox.validate import clean_record, clean_value, describe
from connectors.icompleat.sandbox.wire import Record
from sync.foundation.entities import KINDS
from sync.foundation.secrets import REDACTOR, Secret

CUSTOM_FIELDS = "customfields"


@dataclass(frozen=True)
class TenantSpec:
    """A tenant as configured at start (what ``reset`` returns to)."""

    tenant_id: str
    api_key: Secret = field(repr=False)
    company_ids: tuple[str, ...]
    name: str | None = None


@dataclass(frozen=True)
class WebhookSpec:
    """A push endpoint as configured at start."""

    tenant_id: str
    url: str
    token: Secret = field(repr=False)
    company_id: str | None = None
    types: tuple[str, ...] = TYPES


def api_of(kind: str) -> str:
    """The route prefix for ``kind``: a registry name (``tax_codes``) or a prefix itself."""
    if kind in KINDS:
        return KINDS[kind].api
    if kind == CUSTOM_FIELDS:
        return kind
    return kind_for(kind).api


class SandboxState(ReferenceOps, CustomFieldOps, TrayOps):
    """All tenants' data, the fault switches and the request log of one sandbox."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._initial = (self.token_ttl, self.clock)
        self._specs: list[TenantSpec] = []
        self._webhook_specs: list[WebhookSpec] = []

    def configure(self, spec: TenantSpec) -> None:
        """Add a tenant and remember it for ``reset``."""
        self._specs.append(spec)
        self.add_tenant(spec.tenant_id, spec.api_key, spec.company_ids, name=spec.name)

    def set_webhook(self, tenant_id: str, url: str, token: str | Secret, *,
                    company_id: str | None = None, types: Iterable[str] = TYPES) -> None:
        """Push approved transactions of ``types`` (of one company, or all) to ``url``."""
        secret = token if isinstance(token, Secret) else Secret(token, origin="sandbox")
        REDACTOR.add(secret.reveal())
        with self._lock:
            tenant = self.get_tenant(tenant_id)
            companies = ([self.company(tenant_id, company_id)] if company_id
                         else list(tenant.companies.values()))
            for company in companies:
                for tx_type in types:
                    company.webhooks[tx_type] = Endpoint(url, secret)

    def configure_webhook(self, spec: WebhookSpec) -> None:
        """Set a webhook and remember it for ``reset``."""
        self._webhook_specs.append(spec)
        self.set_webhook(spec.tenant_id, spec.url, spec.token, company_id=spec.company_id,
                         types=spec.types)

    def webhook_for(self, tenant_id: str, tx: Record) -> Endpoint | None:
        """The endpoint a transaction is pushed to, or None when none is configured."""
        with self._lock:
            company = self.company(tenant_id, tx["Company"]["Id"])
            return company.webhooks.get(str(tx.get("Type")))

    def reset(self) -> None:
        """Back to the configured tenants and settings: no data, faults, log or tray."""
        with self._lock:
            self.store.clear()
            self.tokens.clear()
            self.tenants.clear()
            self._failures.clear()
            self.faults.clear()
            self.log.clear()
            self.token_ttl, self.clock = self._initial
            for spec in self._specs:
                self.add_tenant(spec.tenant_id, spec.api_key, spec.company_ids, name=spec.name)
            for hook in self._webhook_specs:
                self.set_webhook(hook.tenant_id, hook.url, hook.token,
                                 company_id=hook.company_id, types=hook.types)

    def records(self, tenant_id: str, company_id: str, kind: str) -> list[Record]:
        """Every record of a kind (custom fields: every field with its values), for checkers."""
        api = api_of(kind)
        if api == CUSTOM_FIELDS:
            return self.all_fields(tenant_id, company_id)
        with self._lock:
            return list(self.ref_set(tenant_id, company_id, api))

    def seed(self, tenant_id: str, company_id: str, kind: str, records: Sequence[Any], *,
             validate: bool = True) -> None:
        """Add or replace records by code without a token (custom fields: by field name).

        ``validate=False`` stores records the API would refuse, to rehearse bad remote data.
        """
        api = api_of(kind)
        if api == CUSTOM_FIELDS:
            for item in records:
                self._seed_field(tenant_id, company_id, item, validate=validate)
            return
        clean = ([clean_record(kind_for(api), r, describe("seed", i, r))
                  for i, r in enumerate(records)] if validate else [dict(r) for r in records])
        with self._lock:
            self.ref_set(tenant_id, company_id, api).merge(clean)

    def _seed_field(self, tenant_id: str, company_id: str, item: Record, *,
                    validate: bool) -> None:
        values = item.get("Values") or []
        definition = {k: v for k, v in item.items() if k not in ("Values", "Id")}
        with self._lock:
            company = self.company(tenant_id, company_id)
            existing = [f for f in company.fields.values()
                        if fold(f.definition["Name"]) == fold(str(item.get("Name")))]
            field_id = (existing[0].id if existing
                        else self.create_fields(tenant_id, company_id, [definition])[0]["Id"])
            clean = ([clean_value(v, describe("Values", i, v)) for i, v in enumerate(values)]
                     if validate else [dict(v) for v in values])
            company.fields[fold(field_id)].values.merge(clean)

    def remove(self, tenant_id: str, company_id: str, kind: str, code: str) -> bool:
        """Delete one record by hand (as a user in iCompleat's screens); False if absent."""
        with self._lock:
            return self.ref_set(tenant_id, company_id, api_of(kind)).remove(code)
