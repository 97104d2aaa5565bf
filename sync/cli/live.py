"""``icsync check --live``: which calls does this tenant's iCompleat support, before any write?

Every route the configuration will use is called once with a GET (tenant, companies, users,
each configured kind's first page, custom fields, the approved transactions' first page and one
transaction's detail). Write routes are probed only with ``--probe-writes``, against the company
named by ``--test-company``, and only with calls that cannot change data: an edit and a delete
of a code that does not exist and a journal number for a transaction id that does not exist
(an answer of HTTP 400 "unknown record/transaction" proves the call exists; 404/405 that it does
not). Refresh POSTs would replace a live set, so they are never probed. Each probe is reported
with its route, method, HTTP status, latency, verdict and where the route comes from
(documented, seen, assumed), and 404/405 answers are recorded as capabilities in the state DB.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from connectors.icompleat.client import CallRecord, IcompleatClient
from connectors.icompleat.routes import JOURNAL_NUMBER
from sync.foundation.config import CompanyConfig, Config
from sync.foundation.entities import KINDS
from sync.foundation.errors import ApiError, AuthRejected, BadRequest, ConfigError, Unsupported
from sync.runtime.capabilities import JOURNAL_WRITE, fallback_of
from sync.state.store import StateStore

PROBE_CODE = "ICSYNC-PROBE-0"  # a record code no ERP uses: edits and deletes of it change nothing
PROBE_TX = "00000000-0000-4000-8000-00000000c0de"  # a transaction id that does not exist


@dataclass
class Probe:
    """One probed route and what it answered."""

    route: str
    method: str
    company: str | None
    status: int | None
    ms: float | None
    verdict: str  # ok | unsupported | refused | failed | skipped
    basis: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON form."""
        return asdict(self)


Step = Callable[[], Awaitable[Any]]


class LiveProbe:
    """Runs the probes with one client, noting each call's status and latency."""

    def __init__(self, client: IcompleatClient, calls: list[CallRecord]) -> None:
        self.client, self.calls = client, calls
        self.probes: list[Probe] = []

    async def probe(self, route: str, company: str | None, step: Step, *,
                    write: bool = False) -> Any:
        """Call ``step`` (which uses ``route``) and record its verdict; its result or None."""
        before = len(self.calls)
        result, verdict, detail = None, "ok", ""
        try:
            result = await step()
        except Unsupported as exc:
            verdict, detail = "unsupported", fallback_of(exc.route)
        except AuthRejected as exc:
            verdict, detail = "refused", str(exc)
        except BadRequest as exc:
            if write:  # an unknown record/transaction proves the call exists
                detail = f"answered ErrorCode {exc.error_code}: the call exists"
            else:
                verdict, detail = "failed", str(exc)
        except ApiError as exc:
            verdict, detail = "failed", str(exc)
        mine = [c for c in self.calls[before:] if c.route == route] or self.calls[before:]
        last = mine[-1] if mine else None
        spec = self.client.routes[route]
        self.probes.append(Probe(route, spec.method, company, last.status if last else None,
                                 round(last.seconds * 1000, 1) if last else None, verdict,
                                 spec.basis, detail))
        return result

    def skipped(self, route: str, company: str | None, why: str) -> None:
        """A route that is not probed, and why."""
        spec = self.client.routes[route]
        self.probes.append(Probe(route, spec.method, company, None, None, "skipped",
                                 spec.basis, why))


async def probe_reads(live: LiveProbe, company: CompanyConfig) -> None:
    """Every GET the configuration will use for ``company``."""
    client, cid, name = live.client, company.company_id, company.name
    await live.probe("users", name, lambda: client.users(cid))
    for kind in (KINDS[k] for k in company.kinds):
        if kind.name == "custom_fields":
            fields = await live.probe("customfields.list", name,
                                      lambda: client.custom_fields(cid))
            if fields:
                await live.probe("customfield.detail", name, functools.partial(
                    client.custom_field, cid, str(fields[0].get("Id"))))
            else:
                live.skipped("customfield.detail", name, "the company has no custom field")
            continue
        await live.probe(f"{kind.api}.list", name, _first_page(client, kind.api, cid))
    if company.transaction_types:
        await _transactions(live, company)


async def first_of(pages: AsyncIterator[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The first page of a paged read (one call), closing the reader."""
    try:
        return await anext(pages, [])
    finally:
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()


def _first_page(client: IcompleatClient, api: str, company_id: str) -> Step:
    return lambda: first_of(client.reference_pages(api, company_id))


async def _transactions(live: LiveProbe, company: CompanyConfig) -> None:
    client, name = live.client, company.name

    listed = await live.probe("transactions.list", name, lambda: first_of(
        client.transaction_pages(company.company_id,
                                 transaction_type=company.transaction_types[0])))
    if listed:
        tx_id = str(listed[0].get("Id"))
        await live.probe("transaction.detail", name, lambda: client.transaction(tx_id))
    else:
        live.skipped("transaction.detail", name, "no approved transaction to read")


async def probe_writes(live: LiveProbe, company: CompanyConfig) -> None:
    """Write calls that cannot change data, against the operator's test company."""
    client, cid, name = live.client, company.company_id, company.name
    for kind in (KINDS[k] for k in company.kinds if k != "custom_fields"):
        edit, delete = _harmless_writes(client, kind.api, cid)
        await live.probe(f"{kind.api}.edit", name, edit, write=True)
        await live.probe(f"{kind.api}.delete", name, delete, write=True)
        live.skipped(f"{kind.api}.post", name,
                     "never probed: a refresh would replace the live set")
    await live.probe("transaction.edit", name, lambda: client.edit_transaction(
        PROBE_TX, {JOURNAL_NUMBER: "ICSYNC-PROBE"}), write=True)


def _harmless_writes(client: IcompleatClient, api: str, company_id: str) -> tuple[Step, Step]:
    """An edit and a delete of a code that does not exist: answered 400 where they exist."""
    async def edit() -> Any:
        return await client.edit_reference(api, company_id, PROBE_CODE,
                                           {"Code": PROBE_CODE, "Name": "icsync probe"})

    async def delete() -> Any:
        return await client.delete_reference(api, company_id, PROBE_CODE)
    return edit, delete


async def run_live(config: Config, store: StateStore | None, *, probe_writes_in: str | None,
                   ) -> list[Probe]:
    """Probe every route the configuration uses; record 404/405 answers as capabilities."""
    settings = config.settings
    test = settings.company(probe_writes_in) if probe_writes_in else None
    calls: list[CallRecord] = []
    async with IcompleatClient.from_config(config, on_call=calls.append) as client:
        live = LiveProbe(client, calls)
        await live.probe("tenant", None, client.tenant)
        await live.probe("companies", None, client.companies)
        for company in settings.companies:
            await probe_reads(live, company)
        if test is not None:
            await probe_writes(live, test)
    if store is not None:
        await asyncio.to_thread(_remember, store, settings.icompleat.tenant_id, live.probes)
    return live.probes


def _remember(store: StateStore, tenant_id: str, probes: list[Probe]) -> None:
    for probe in probes:
        if probe.verdict not in ("ok", "unsupported"):
            continue
        operation = JOURNAL_WRITE if probe.route == "transaction.edit" else probe.route
        store.record_capability(tenant_id, operation, supported=probe.verdict == "ok",
                                status=probe.status, detail=probe.detail or None)


def check_test_company(config: Config, name: str | None, probe_writes: bool) -> str | None:
    """The test company's name for write probes; ConfigError when the flags do not fit."""
    if not probe_writes:
        return None
    if not name:
        raise ConfigError("--probe-writes needs --test-company NAME: a configured company "
                          "whose iCompleat data may be probed", key="--test-company")
    return config.settings.company(name).name
