"""The admin API under ``/_sandbox/``: loopback clients only, no API key.

Everything a rehearsal needs from outside the Python process: reset, fault switches and key
rotation, the request log, seeding and reading every record (for checkers), webhook endpoints and
their delivery switches, the posting-failures tray with its retry, and creating and approving
transactions. Bodies and answers are JSON; a secret sent here (a new key, a webhook token) is
never echoed back. Errors: 403 for a non-loopback client, 404 for an unknown tenant, company or
tray entry, 400 for a bad body or a record the API would refuse (with ErrorCode and Message).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.icompleat.routes import ERROR_CODE, ERROR_MESSAGE, ROUTES, RouteTable
from connectors.icompleat.sandbox.faults import ANY_ROUTE, Fault
from connectors.icompleat.sandbox.state import SandboxState
from connectors.icompleat.sandbox.transactions import TYPES
from connectors.icompleat.sandbox.webhooks import Pusher
from sync.foundation.errors import BadRequest

Endpoint = Callable[[Request], Awaitable[Any]]


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _guarded(handler: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """Refuse non-loopback clients and turn errors into JSON answers."""
    async def endpoint(request: Request) -> Response:
        if not is_loopback(request.client.host if request.client else None):
            return JSONResponse({"error": "the sandbox admin API answers loopback only"}, 403)
        try:
            result = await handler(request)
        except BadRequest as exc:
            return JSONResponse({ERROR_CODE: exc.error_code, ERROR_MESSAGE: exc.api_message}, 400)
        except KeyError as exc:
            return JSONResponse({"error": str(exc.args[0] if exc.args else exc)}, 404)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return result if isinstance(result, Response) else JSONResponse(result)
    return endpoint


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def build_admin(state: SandboxState, pusher: Pusher, routes: RouteTable = ROUTES) -> Starlette:
    """The admin API as a Starlette app bound to ``state`` and ``pusher``."""
    table = _table(_Admin(state, pusher, frozenset(routes)))
    return Starlette(routes=[Route(path, _guarded(fn), methods=[method])
                             for method, path, fn in table])


def admin_help() -> str:
    """Every admin endpoint with its one-line description (for ``icsync sandbox --help``)."""
    ops = _Admin.__new__(_Admin)
    lines = []
    for method, path, fn in _table(ops):
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        if path == "/_sandbox":
            continue  # the same as /_sandbox/
        lines.append(f"  {method:<6} {path}\n           {doc}")
    return "\n".join(lines)


def _table(ops: _Admin) -> list[tuple[str, str, Endpoint]]:
    """(method, path, endpoint) of every admin call; ``/_sandbox`` and ``/_sandbox/`` alike."""
    return [
        ("GET", "/_sandbox", ops.summary),
        ("GET", "/_sandbox/", ops.summary), ("POST", "/_sandbox/reset", ops.reset),
        ("GET", "/_sandbox/faults", ops.faults), ("DELETE", "/_sandbox/faults", ops.clear),
        ("PUT", "/_sandbox/faults/{route}", ops.set_fault),
        ("DELETE", "/_sandbox/faults/{route}", ops.clear_fault),
        ("POST", "/_sandbox/faults-seed", ops.seed_faults),
        ("POST", "/_sandbox/rotate-key", ops.rotate_key),
        ("GET", "/_sandbox/log", ops.log), ("DELETE", "/_sandbox/log", ops.clear_log),
        ("PUT", "/_sandbox/settings", ops.settings),
        ("POST", "/_sandbox/seed/{tenant}/{company}/{kind}", ops.seed),
        ("GET", "/_sandbox/records/{tenant}/{company}/{kind}", ops.records),
        ("DELETE", "/_sandbox/records/{tenant}/{company}/{kind}/{code:path}", ops.remove),
        ("GET", "/_sandbox/webhooks", ops.webhooks), ("PUT", "/_sandbox/webhooks", ops.set_hooks),
        ("GET", "/_sandbox/deliveries", ops.deliveries),
        ("GET", "/_sandbox/posting-failures", ops.failures),
        ("POST", "/_sandbox/posting-failures/{failure}/retry", ops.retry),
        ("GET", "/_sandbox/transactions/{tenant}", ops.transactions),
        ("POST", "/_sandbox/transactions/{tenant}/{company}", ops.create_tx),
        ("POST", "/_sandbox/transactions/{tenant}/{tx}/approve", ops.approve),
    ]


class _Admin:
    """The admin endpoints (each documented by the table in ``build_admin``)."""

    def __init__(self, state: SandboxState, pusher: Pusher, routes: frozenset[str]) -> None:
        self.state = state
        self.pusher = pusher
        self.routes = routes

    async def summary(self, request: Request) -> Any:
        """Tenants and companies (never keys), armed faults and the request count."""
        tenants = [{"Id": t.id, "Companies": [c.ref() for c in t.companies.values()]}
                   for t in self.state.tenants.values()]
        return {"tenants": tenants, "faults": self.state.faults.snapshot(),
                "requests": self.state.faults.requests}

    async def reset(self, request: Request) -> Any:
        """Back to the configured tenants, with no data, faults, log, tray or deliveries."""
        self.state.reset()
        self.pusher.reset()
        return {"reset": True}

    async def faults(self, request: Request) -> Any:
        """Every armed fault by route."""
        return self.state.faults.snapshot()

    async def clear(self, request: Request) -> Any:
        """Disarm every fault and pending key rotation."""
        self.state.faults.clear()
        return {"cleared": "*"}

    async def set_fault(self, request: Request) -> Any:
        """Arm the body's switches for one route name (or ``*``)."""
        route = request.path_params["route"]
        if route != ANY_ROUTE and route not in self.routes:
            raise KeyError(f"no route {route!r}; known: {sorted(self.routes)}")
        fault = self.state.faults.set(route, Fault.from_json(await _json(request)))
        return {"route": route, **fault.to_json()}

    async def clear_fault(self, request: Request) -> Any:
        """Disarm one route's fault."""
        self.state.faults.clear(request.path_params["route"])
        return {"cleared": request.path_params["route"]}

    async def seed_faults(self, request: Request) -> Any:
        """Reseed the random draws of the fault switches."""
        self.state.faults.seed(int((await _json(request))["seed"]))
        return {"seeded": True}

    async def rotate_key(self, request: Request) -> Any:
        """``{tenant_id, new_key, at_request?}``: rotate now, or at API request N."""
        body = await _json(request)
        tenant = self.state.get_tenant(str(body["tenant_id"])).id
        if body.get("at_request") is None:
            self.state.rotate_key(tenant, str(body["new_key"]))
        else:
            self.state.faults.rotate_key_at(tenant, int(body["at_request"]), str(body["new_key"]))
        return {"tenant_id": tenant, "at_request": body.get("at_request")}

    async def log(self, request: Request) -> Any:
        """Counts per route and status, and the last ``limit`` entries (of ``route``)."""
        route = request.query_params.get("route")
        limit = int(request.query_params.get("limit", "1000"))
        entries = self.state.log.entries(route)[-limit:] if limit > 0 else []
        return {"counts": self.state.log.counts(), "requests": self.state.faults.requests,
                "entries": [asdict(e) for e in entries]}

    async def clear_log(self, request: Request) -> Any:
        """Forget the request log."""
        self.state.log.clear()
        return {"cleared": True}

    async def settings(self, request: Request) -> Any:
        """``{token_ttl?, webhook_timeout?}`` in seconds."""
        body = await _json(request)
        if body.get("token_ttl") is not None:
            self.state.token_ttl = float(body["token_ttl"])
        if body.get("webhook_timeout") is not None:
            self.pusher.timeout = float(body["webhook_timeout"])
        return {"token_ttl": self.state.token_ttl, "webhook_timeout": self.pusher.timeout}

    async def seed(self, request: Request) -> Any:
        """``{records: [...], validate?: true}`` added to a kind of one company."""
        body, p = await _json(request), request.path_params
        records = body.get("records")
        if not isinstance(records, list):
            raise ValueError("records must be a list")
        self.state.seed(p["tenant"], p["company"], p["kind"], records,
                        validate=bool(body.get("validate", True)))
        return {"seeded": len(records)}

    async def records(self, request: Request) -> Any:
        """Every record of a kind of one company."""
        p = request.path_params
        return {"records": self.state.records(p["tenant"], p["company"], p["kind"])}

    async def remove(self, request: Request) -> Any:
        """Delete one record by hand; 404 when it does not exist."""
        p = request.path_params
        if not self.state.remove(p["tenant"], p["company"], p["kind"], p["code"]):
            raise KeyError(f"no record {p['code']!r}")
        return {"removed": p["code"]}

    async def webhooks(self, request: Request) -> Any:
        """Endpoints by company and type (no tokens) and the delivery switches."""
        hooks = [{"tenant_id": t.id, "company_id": c.id, "type": kind, "url": e.url}
                 for t in self.state.tenants.values() for c in t.companies.values()
                 for kind, e in c.webhooks.items()]
        return {"endpoints": hooks, "duplicates": self.pusher.duplicates,
                "concurrency": self.pusher.concurrency, "timeout": self.pusher.timeout}

    async def set_hooks(self, request: Request) -> Any:
        """``{tenant_id?, url?, token?, company_id?, types?, duplicates?, concurrency?,
        timeout?}``: set an endpoint (url and token together) and/or the switches."""
        body = await _json(request)
        if body.get("url") is not None:
            self.state.set_webhook(str(body["tenant_id"]), str(body["url"]), str(body["token"]),
                                   company_id=body.get("company_id"),
                                   types=tuple(body.get("types") or TYPES))
        for name in ("duplicates", "concurrency"):
            if body.get(name) is not None:
                setattr(self.pusher, name, max(1, int(body[name])))
        if body.get("timeout") is not None:
            self.pusher.timeout = float(body["timeout"])
        return await self.webhooks(request)

    async def deliveries(self, request: Request) -> Any:
        """Every webhook POST made, with its outcome."""
        return {"deliveries": [asdict(d) for d in list(self.pusher.deliveries)]}

    async def failures(self, request: Request) -> Any:
        """The posting-failures tray."""
        return {"failures": self.state.posting_failures()}

    async def retry(self, request: Request) -> Any:
        """Retry posting one tray entry and wait for the outcome."""
        delivery = await self.pusher.retry_now(request.path_params["failure"])
        return {"ok": delivery.ok, **asdict(delivery)}

    async def transactions(self, request: Request) -> Any:
        """Every transaction of a tenant."""
        return {"transactions": self.state.all_transactions(request.path_params["tenant"])}

    async def create_tx(self, request: Request) -> Any:
        """Create a transaction (the API's create, without a key)."""
        p = request.path_params
        return {"transaction": self.state.create_transaction(p["tenant"], p["company"],
                                                             await _json(request))}

    async def approve(self, request: Request) -> Any:
        """Approve a transaction; its push starts in the background."""
        p = request.path_params
        return {"transaction": self.state.approve(p["tenant"], p["tx"])}
