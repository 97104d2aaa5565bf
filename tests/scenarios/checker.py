"""The reference-sync checker of the fault scenarios: L, D, X and U between sandbox and source.

- L (lost): a record the source holds (after normalisation, minus rows set aside) that iCompleat
  does not hold, or holds with other values (a change that never landed is lost too);
- D (duplicated): two records of one kind whose codes collide (case, whitespace, zero padding),
  plus every APPEND that re-sent records iCompleat already held as sent (a create repeated
  blindly instead of settled by a read), seen by the :class:`WireTap` on the sandbox;
- X (unexpected): a record iCompleat holds that the source does not;
- U (unknown): operations of the state journal still ``intent`` or ``unknown``.

Expected values come from the ERP read through the configured source and the product's own
normaliser; the remote side from the sandbox's records, made canonical the same way, so two
records are equal exactly when the engine's digests are.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connectors.base import CompanyRef
from connectors.factory import build_source
from connectors.icompleat.sandbox import SandboxServer
from sync.foundation.config import Config
from sync.foundation.entities import KINDS, get_kind
from sync.reference.apply import canonical, frame_records
from sync.reference.kind import kind_mapping
from sync.reference.rules.keys import collision_key
from sync.reference.rules.normalise import normalise
from sync.state.store import StateStore
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID

PAGED = ("currencies", "tax_codes", "account_codes", "delivery_sites", "suppliers")


@dataclass(frozen=True)
class Check:
    """The checker's figures for one company; ``ok`` when all are zero."""

    lost: tuple[str, ...] = ()
    duplicated: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    unknown: int = 0

    @property
    def ok(self) -> bool:
        """L = D = X = U = 0."""
        return not (self.lost or self.duplicated or self.unexpected or self.unknown)

    def __str__(self) -> str:
        return (f"L={len(self.lost)} D={len(self.duplicated)} X={len(self.unexpected)} "
                f"U={self.unknown} lost={list(self.lost[:5])} dup={list(self.duplicated[:5])} "
                f"unexpected={list(self.unexpected[:5])}")


def remote_rows(sandbox: SandboxServer, kind: str) -> list[dict[str, Any]]:
    """The sandbox's records of ``kind`` in the engine's record shape (custom field values as
    rows of their ACTIVE fields)."""
    records = sandbox.state.records(TENANT_ID, COMPANY_ID, kind)
    if kind != "custom_fields":
        return records
    return [{"Field": f["Name"], "Code": v.get("Code"), "Name": v.get("Name"),
             "Type": f.get("Type"), "Mandatory": f.get("Mandatory")}
            for f in records if f.get("Active", True) for v in f.get("Values") or []]


def expected(config: Config, kind: str) -> tuple[dict[str, str], set[str]]:
    """(key -> digest of every sendable source row, keys of rejected rows) for ``kind``."""
    company = config.settings.companies[0]
    source_name = str(company.source)
    source = build_source(source_name, config.settings.sources[source_name])
    try:
        read = source.read(kind, CompanyRef(company.name, company.company_id))
    finally:
        source.close()
    norm = normalise(get_kind(kind), read.frame, kind_mapping(config.settings, source_name, kind),
                     config.settings.validation)
    _, digests = frame_records(get_kind(kind), norm.frame)
    return digests, set(norm.held_keys)


def check(sandbox: SandboxServer, config: Config, *, kinds: tuple[str, ...] | None = None,
          exclude: set[str] | None = None, tap: WireTap | None = None) -> Check:
    """Compare the sandbox with the source for ``kinds`` (default: the company's kinds).

    ``exclude``: keys the scenario expects to be absent (rows iCompleat itself refused).
    """
    company = config.settings.companies[0]
    lost: list[str] = []
    dup: list[str] = []
    unexpected: list[str] = []
    for kind in kinds or tuple(company.kinds):
        want, held = expected(config, kind)
        rows = remote_rows(sandbox, kind)
        have = frame_records(get_kind(kind), canonical(get_kind(kind), rows))[1]
        skip = (exclude or set()) | held
        lost += [f"{kind}:{k}" for k, d in want.items() if k not in skip and have.get(k) != d]
        unexpected += [f"{kind}:{k}" for k in have if k not in want and k not in skip]
        dup += [f"{kind}:{k}" for k, n in Counter(collision_key(k) for k in have).items()
                if n > 1]
    if tap is not None:
        dup += tap.blind_resends()
    return Check(tuple(lost), tuple(dup), tuple(unexpected), open_operations(config))


def open_operations(config: Config) -> int:
    """Operations of the state journal still intent or unknown (U)."""
    store = StateStore.open(config.settings.state.url)
    try:
        return len(store.open_operations(config.settings.companies[0].name))
    finally:
        store.close()


@dataclass
class WireTap:
    """Watches every reference POST the sandbox applies: which records it already held exactly
    as sent. Install with :meth:`install`."""

    posts: list[tuple[str, bool, list[str], list[str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, sandbox: SandboxServer) -> WireTap:
        """Wrap the sandbox's reference POST (replacing any earlier tap) until :meth:`remove`."""
        state = sandbox.state
        original = functools.partial(type(state).post_set, state)

        def post_set(tenant_id: str, company_id: str | None, api: str, items: Any,
                     token: Any) -> str:
            before = {r["Code"]: r for r in state.ref_set(tenant_id, company_id, api)}
            result: str = original(tenant_id, company_id, api, items, token)
            codes = [str(i.get("Code")) for i in items if isinstance(i, dict)]
            same = [c for c in codes if before.get(c) == _cleaned(state, tenant_id, company_id,
                                                                   api, c)]
            with self._lock:
                self.posts.append((api, bool(token), codes, same))
            return result

        state.post_set = post_set  # type: ignore[method-assign]
        return self

    @staticmethod
    def remove(sandbox: SandboxServer) -> None:
        """Take any tap off the sandbox (the session's sandbox outlives each test)."""
        vars(sandbox.state).pop("post_set", None)

    def blind_resends(self) -> list[str]:
        """Codes re-sent by a POST with a token (an append, or a refresh chunk after the first)
        although iCompleat already held every record of it exactly as sent: a write repeated
        blindly instead of settled by a read. (A POST without a token starts a new set and
        replaces the list: never a repeat.)"""
        return [f"resent {api}:{c}" for api, has_token, codes, same in self.posts
                if has_token and codes and len(same) == len(codes) for c in same]


def _cleaned(state: Any, tenant_id: str, company_id: str | None, api: str, code: str) -> Any:
    return state.ref_set(tenant_id, company_id, api).get(code)


def kinds_all() -> tuple[str, ...]:
    """Every kind name."""
    return tuple(KINDS)
