"""A local sandbox of the iCompleat API (icompleat-api.md Part A and Part B), with fault switches.

Start one from Python (``with SandboxServer(tenant_id=..., company_ids=[...], api_key=...) as
sb:``), from pytest (the ``sandbox`` fixture of ``tests/fixtures/sandbox.py``) or from the shell
(``icsync sandbox``). ``sb.url`` is the base URL, ``sb.state`` the live :class:`SandboxState`
(records, faults, request log, posting-failures tray), ``sb.pusher`` the webhook pusher.

The module map: ``wire`` (envelope, error bodies), ``contract`` (body binding, unsupported
operations), ``validate`` (Part B rules), ``store`` (record
sets, continuation tokens), ``persist`` (memory or SQLite), ``core`` / ``references`` /
``customfields`` / ``transactions`` / ``tray`` / ``state`` (the operations), ``faults``
(switches, request log), ``webhooks`` (the push), ``api`` (a handler per route), ``app`` (ASGI),
``admin`` (``/_sandbox/``), ``server`` (uvicorn in a thread or in the foreground).

Where Part B leaves a choice open, the sandbox does this:
- ``Count`` of a transactions page is the number of transactions on that page.
- The transactions list is in creation order, oldest first (Part B assumption: the poll's tail
  cursor relies on it); reference lists are in ``Code`` order. A NULL company lists every
  company's transactions.
- Request body keys bind ignoring case, as the real service did (``contract.strict_keys``
  switches that off); ``contract.unsupported`` answers chosen operations 404 or 405.
- A continuation token's expiry slides: each use gives it ``token_ttl`` more seconds.
- A hung request is never applied: when the hang ends (switch cleared, client gone, server
  stopping) the connection is closed without an answer.
- A bad ``x-api-version`` is HTTP 400 with the sandbox's own ErrorCode 1.
- A key rotation "at request N" counts API requests from the last ``faults.clear()``; request N
  is the first one refused with the old key.
"""

from connectors.icompleat.sandbox.faults import Fault, FaultBoard, RequestLog
from connectors.icompleat.sandbox.server import BackgroundServer, SandboxServer, serve
from connectors.icompleat.sandbox.state import SandboxState, TenantSpec, WebhookSpec
from connectors.icompleat.sandbox.webhooks import Delivery, Pusher

__all__ = [
    "BackgroundServer",
    "Delivery",
    "Fault",
    "FaultBoard",
    "Pusher",
    "RequestLog",
    "SandboxServer",
    "SandboxState",
    "TenantSpec",
    "WebhookSpec",
    "serve",
]
