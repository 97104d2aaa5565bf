"""The operator console served by the daemon at ``/`` (``[service] console = true``).

Read from the state DB only, off the event loop and bounded in time: the last run of each
company and job, each job's runs of the last 30 days (chart and table), the quarantine with
reasons and what to do, the ledger backlog, leases, active alerts and route capability changes.

With ``[service] console_actions = true`` the quarantine page gains retry and resolve buttons.
A POST changes anything only when ALL of these hold, and is logged with who and what either way:

- same origin: an ``Origin`` header, when sent, names this host; ``Sec-Fetch-Site``, when sent,
  is ``same-origin`` (or ``none``, typed by hand);
- CSRF: the form's ``csrf`` value equals the ``icsync_csrf`` cookie (HttpOnly, SameSite=Strict)
  set when the page was served (double submit, compared in constant time);
- the console token (``[service] console_token_file``, the systemd credential
  ``console_token`` or ``ICSYNC_CONSOLE_TOKEN``) typed into the form, compared in constant time
  (SHA-256 digests of both, so not even the length leaks).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sync.daemon import pages
from sync.foundation.config import Config
from sync.foundation.logs import get_logger
from sync.foundation.outcomes import counts_line
from sync.foundation.secrets import REDACTOR
from sync.runtime.context import Runtime
from sync.state.rows import LedgerRow, QuarantineRow, RunRow
from sync.state.store import StateStore
from sync.transactions.rules import RESOLVED_PREFIX

log = get_logger("icsync.console")
CSRF_COOKIE = "icsync_csrf"
READ_SECONDS = 5.0
MAX_FORM_BYTES = 16_384
DAYS = 30
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
}
DONE = {"retry": "set to be retried by the next run", "resolve": "resolved"}
_BACKLOG = ("seen", "posting", "posted", "quarantined")


class Host(Protocol):
    """What the console needs of the daemon."""

    @property
    def config(self) -> Config: ...

    @property
    def rt(self) -> Runtime | None: ...



def run_view(row: RunRow) -> dict[str, Any]:
    """A run as the pages show it."""
    seconds = ((row.finished_at - row.started_at).total_seconds()
               if row.finished_at is not None else None)
    counts = row.counts if isinstance(row.counts, Mapping) else {}
    return {"id": row.id, "company": row.company, "job": row.job, "outcome": row.outcome,
            "started_at": row.started_at,
            "seconds": "" if seconds is None else round(seconds, 1),
            "calls": counts.get("calls", ""), "counts": counts_line(counts), "error": row.error}


def open_transactions(store: StateStore, config: Config) -> list[LedgerRow]:
    """Quarantined transactions nobody has resolved, of the configured companies."""
    ids = {c.company_id for c in config.settings.companies}
    return [r for r in store.ledger_rows(None, ["quarantined"])
            if r.company_id in ids and not (r.last_error or "").startswith(RESOLVED_PREFIX)]


def overview_data(store: StateStore, config: Config) -> dict[str, Any]:
    """Everything the overview shows; blocking."""
    names = {c.company_id: c.name for c in config.settings.companies}
    latest: dict[tuple[str, str], RunRow] = {}
    for row in store.last_runs(None, 500):
        latest.setdefault((row.company, row.job), row)
    quarantine = Counter((r.company, r.kind) for r in store.quarantined(status="open"))
    for t in open_transactions(store, config):
        quarantine[(names[t.company_id], "transactions")] += 1
    backlog = Counter((names.get(r.company_id, r.company_id), r.status)
                      for r in store.ledger_rows(status=list(_BACKLOG)))
    alerts = store.alert_conditions()
    now = datetime.now(UTC)
    charts = {key: chart(store.runs_since(*key, now - timedelta(days=DAYS)), now)
              for key in sorted(latest)}
    return {"latest": [run_view(latest[k]) for k in sorted(latest)], "charts": charts,
            "quarantine": dict(quarantine), "backlog": dict(backlog), "leases": store.leases(),
            "alerts": [a for a in alerts if a.condition != "capability"],
            "capabilities": [a for a in alerts if a.condition == "capability"],
            "learned": store.capabilities()}


def chart(runs: list[RunRow], now: datetime) -> str:
    """The 30-day SVG chart of finished runs (duration and calls)."""
    points = [(r.started_at, (r.finished_at - r.started_at).total_seconds(),
               int(r.counts.get("calls", 0) or 0)) for r in runs if r.finished_at is not None]
    return pages.run_chart(points, now, DAYS)


def history_page(store: StateStore, company: str, job: str, now: datetime) -> str:
    """One job's page; blocking."""
    runs = store.runs_since(company, job, now - timedelta(days=DAYS))
    shown = [run_view(r) for r in reversed(runs[-50:])]
    return pages.history(company, job, shown, chart(runs, now))


def quarantine_lists(store: StateStore, config: Config
                     ) -> tuple[list[QuarantineRow], list[LedgerRow]]:
    """Open and retry-pending records, and unresolved quarantined transactions; blocking."""
    records = store.quarantined(status="open") + store.quarantined(status="retry")
    return sorted(records, key=lambda r: r.id), open_transactions(store, config)


def apply_action(store: StateStore, action: str, item: str) -> int:
    """Retry or resolve one item (``record:ID`` or ``tx:COMPANY_ID:TX_ID``); rows changed."""
    kind, _, rest = item.partition(":")
    if kind == "record" and rest.isdigit():
        status = "retry" if action == "retry" else "resolved"
        return store.set_quarantine_status([int(rest)], status)
    company_id, _, tx_id = rest.partition(":")
    if kind != "tx" or not company_id or not tx_id:
        return 0
    now = datetime.now(UTC)
    row = store.ledger_get(company_id, tx_id)
    if row is None or row.status != "quarantined":
        return 0
    if action == "retry":
        fields: dict[str, Any] = {"next_attempt_at": now, "attempts": 0}
    else:
        fields = {"next_attempt_at": None,
                  "last_error": f"{RESOLVED_PREFIX} on {now:%Y-%m-%d %H:%M} UTC (console); "
                                f"was: {row.last_error}"}
    return int(store.ledger_transition(company_id, tx_id, expect=["quarantined"],
                                       to="quarantined", **fields))


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison of two tokens (digests first: lengths do not leak either)."""
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(),
                               hashlib.sha256(expected.encode("utf-8")).digest())


class Console:
    """The console's handlers, bound to one daemon."""

    def __init__(self, host: Host) -> None:
        self.host = host
        service = host.config.settings.service
        token = host.config.console_token
        self.actions = service.console_actions and token is not None
        self.token = token.reveal() if token is not None and self.actions else None

    async def _read(self, fn: Any, *args: Any) -> Any:
        rt = self.host.rt
        if rt is None:
            raise RuntimeError("the runtime is not open")
        async with asyncio.timeout(READ_SECONDS):
            return await asyncio.to_thread(fn, rt.store, *args)

    def _html(self, request: Request, body: str, status: int = 200) -> Response:
        response = HTMLResponse(body, status_code=status, headers=HEADERS)
        if self.actions and not request.cookies.get(CSRF_COOKIE):
            response.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=True,
                                samesite="strict", path="/")
        return response

    def _forms(self, request: Request) -> pages.Forms:
        if not self.actions:
            return pages.Forms()
        request.state.csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        return pages.Forms(request.state.csrf)

    async def overview(self, request: Request) -> Response:
        """``GET /``."""
        self._forms(request)
        data = await self._read(overview_data, self.host.config)
        return self._html(request, pages.overview(data))

    async def history(self, request: Request) -> Response:
        """``GET /runs/{company}/{job}``."""
        self._forms(request)
        company, job = request.path_params["company"], request.path_params["job"]
        if company not in {c.name for c in self.host.config.settings.companies}:
            return self._html(request, pages.page("Not found", "No such company."), 404)
        body = await self._read(history_page, company, job, datetime.now(UTC))
        return self._html(request, body)

    async def quarantine(self, request: Request, *, note: str = "", error: bool = False,
                         status: int = 200) -> Response:
        """``GET /quarantine`` (also the answer to an action)."""
        forms = self._forms(request)
        done = request.query_params.get("done")
        if not note and done in DONE:
            count = request.query_params.get("n", "0")
            note = f"{int(count) if count.isdigit() else 0} item(s) {DONE[done]}."
        records, transactions = await self._read(quarantine_lists, self.host.config)
        names = {c.company_id: c.name for c in self.host.config.settings.companies}
        body = pages.quarantine(records, transactions, names, forms, note=note, error=error)
        return self._html(request, body, status)

    async def act(self, request: Request) -> Response:
        """``POST /actions/{retry|resolve}``: checked as the module says, then applied."""
        action = request.path_params["action"]
        if action not in DONE:
            return self._html(request, pages.page("Not found", "No such action."), 404)
        form = await _form(request)
        who = REDACTOR((form.get("operator") or "anonymous").strip())[:64]
        address = request.client.host if request.client else "unknown"
        item = form.get("item", "")[:300]
        refusal = self._refusal(request, form)
        if refusal is not None:
            log.warning("console_action_refused", who=who, address=address, action=action,
                        item=item, reason=refusal)
            return await self.quarantine(request, note=f"Refused: {refusal}. Nothing changed.",
                                         error=True, status=403)
        changed = await self._read(apply_action, action, item)
        log.info("console_action", who=who, address=address, action=action, item=item,
                 changed=changed)
        return RedirectResponse(f"/quarantine?done={action}&n={changed}", status_code=303,
                                headers=HEADERS)

    def _refusal(self, request: Request, form: Mapping[str, str]) -> str | None:
        """Why a POST must not change anything (None when it may)."""
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            return "the form came from another site"
        if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
            return "the form came from another site"
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie.encode(), form.get("csrf", "").encode()):
            return "the form is stale or forged (reload the page and try again)"
        if self.token is None or not same_token(form.get("token", ""), self.token):
            return "wrong console token"
        return None


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (capped at MAX_FORM_BYTES), first value of each field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in fields.items() if v}


def console_routes(host: Host) -> list[BaseRoute]:
    """The console's routes (none unless ``[service] console = true``)."""
    if not host.config.settings.service.console:
        return []
    console = Console(host)
    routes: list[BaseRoute] = [
        Route("/", console.overview, methods=["GET"]),
        Route("/runs/{company}/{job}", console.history, methods=["GET"]),
        Route("/quarantine", console.quarantine, methods=["GET"]),
    ]
    if console.actions:
        routes.append(Route("/actions/{action:str}", console.act, methods=["POST"]))
    return routes
