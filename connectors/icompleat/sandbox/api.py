"""One handler per route of the routes table: parameters and body in, payload fields out.

Handlers are plain functions over the state; the ASGI layer (``app.py``) does the headers,
faults, envelope and error bodies. Payload names are read from each route, so a route table with
user overrides is served as faithfully as the default one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.icompleat.routes import CONTINUATION_TOKEN, REFERENCE_APIS, Route
from connectors.icompleat.sandbox.state import SandboxState
from connectors.icompleat.sandbox.wire import Record, invalid

REFERENCE_PREFIXES = frozenset(api for api, *_ in REFERENCE_APIS)


@dataclass(frozen=True)
class Call:
    """One authenticated API request, as the handlers see it."""

    route: Route
    params: dict[str, str | None]
    body: Any
    tenant_id: str

    def param(self, name: str) -> str | None:
        """A path parameter (None for ``NULL``)."""
        return self.params.get(name)

    def text(self, name: str) -> str:
        """A path parameter that may not be ``NULL``."""
        value = self.params.get(name)
        if value is None:
            raise invalid("", name, "must not be NULL in the path")
        return value

    def page(self) -> int:
        """The ``pageNumber`` segment: a whole number from 1."""
        raw = self.params.get("pageNumber") or ""
        if not raw.isdigit() or int(raw) < 1:
            raise invalid("", "pageNumber", f"must be a whole number from 1, got {raw!r}")
        return int(raw)

    def object_body(self) -> dict[str, Any]:
        """The JSON body, which must be an object."""
        if not isinstance(self.body, dict):
            raise invalid("", self.route.request_payload or "body", "must be sent in a JSON "
                                                                   "object body")
        return self.body

    @property
    def company(self) -> str | None:
        """The ``companyId`` segment."""
        return self.params.get("companyId")


Handler = Callable[[SandboxState, Call], Record]


def _payload(call: Call, value: Any) -> Record:
    return {call.route.response_payload: value} if call.route.response_payload else {}


def tenant(state: SandboxState, call: Call) -> Record:
    """The tenant object, NOT wrapped: its fields sit beside MetaData."""
    found = state.get_tenant(call.tenant_id)
    return {"Id": found.id, "Name": found.name}


def companies(state: SandboxState, call: Call) -> Record:
    """The tenant's companies."""
    found = state.get_tenant(call.tenant_id)
    return _payload(call, [c.ref() for c in found.companies.values()])


def ref_list(state: SandboxState, call: Call, api: str) -> Record:
    """One page of a reference list (a user segment must name a user of the tenant, and a
    transaction segment a transaction of it, when they are not NULL)."""
    size = call.route.page_size or 100
    if call.param("userId") is not None:
        state.check_user(state.get_tenant(call.tenant_id), call.param("userId"))
    if call.param("transactionId") is not None:
        state.transaction(call.tenant_id, call.param("transactionId"))
    return _payload(call, state.list_page(call.tenant_id, call.company, api, call.page(), size))


def ref_post(state: SandboxState, call: Call, api: str) -> Record:
    """Refresh or append a chunk; the continuation token for the next one."""
    body = call.object_body()
    token = state.post_set(call.tenant_id, call.company, api,
                           body.get(call.route.request_payload or ""), body.get(CONTINUATION_TOKEN))
    return {CONTINUATION_TOKEN: token}


def ref_edit(state: SandboxState, call: Call, api: str) -> Record:
    """Replace one record."""
    record = state.edit_record(call.tenant_id, call.company, api, call.text("code"),
                               call.object_body())
    return _payload(call, record)


def ref_delete(state: SandboxState, call: Call, api: str) -> Record:
    """Delete one record."""
    state.delete_record(call.tenant_id, call.company, api, call.text("code"))
    return {}


REFERENCE_HANDLERS: dict[str, Callable[[SandboxState, Call, str], Record]] = {
    "list": ref_list, "post": ref_post, "edit": ref_edit, "delete": ref_delete,
}


def fields_list(state: SandboxState, call: Call) -> Record:
    """The active custom fields."""
    return _payload(call, state.list_fields(call.tenant_id, call.company))


def fields_create(state: SandboxState, call: Call) -> Record:
    """Create custom fields."""
    items = call.object_body().get(call.route.request_payload or "")
    return _payload(call, state.create_fields(call.tenant_id, call.company, items))


def field_detail(state: SandboxState, call: Call) -> Record:
    """One custom field with its values."""
    return _payload(call, state.field_detail(call.tenant_id, call.company,
                                             call.text("customFieldId")))


def field_edit(state: SandboxState, call: Call) -> Record:
    """Edit one custom field's definition."""
    return _payload(call, state.edit_field(call.tenant_id, call.company,
                                           call.text("customFieldId"), call.object_body()))


def field_delete(state: SandboxState, call: Call) -> Record:
    """Delete one custom field."""
    state.delete_field(call.tenant_id, call.company, call.text("customFieldId"))
    return {}


def field_values(state: SandboxState, call: Call) -> Record:
    """Replace or append a custom field's values."""
    body = call.object_body()
    token = state.post_values(call.tenant_id, call.company, call.text("customFieldId"),
                              body.get(call.route.request_payload or ""),
                              body.get(CONTINUATION_TOKEN))
    return {CONTINUATION_TOKEN: token}


def users(state: SandboxState, call: Call) -> Record:
    """The tenant's users (the company segment, when not NULL, must be one of its companies)."""
    found = state.users(call.tenant_id, call.company)
    return {**_payload(call, found), "Count": len(found)}


def tx_list(state: SandboxState, call: Call) -> Record:
    """One page of transactions, with PageNumber, Count (on this page) and PageSize."""
    page, size = call.page(), call.route.page_size or 20
    items = state.list_transactions(call.tenant_id, call.company, page,
                                    user_id=call.param("userId"), status=call.param("status"),
                                    tx_type=call.param("transactionType"), size=size)
    return {**_payload(call, items), "PageNumber": page, "Count": len(items), "PageSize": size}


def tx_detail(state: SandboxState, call: Call) -> Record:
    """One transaction."""
    return _payload(call, state.transaction(call.tenant_id, call.param("transactionId"),
                                            call.param("userId")))


def tx_create(state: SandboxState, call: Call) -> Record:
    """Create a transaction."""
    return _payload(call, state.create_transaction(call.tenant_id, call.company, call.body))


def tx_edit(state: SandboxState, call: Call) -> Record:
    """Edit a transaction (approve, deny, record a journal number)."""
    return _payload(call, state.edit_transaction(call.tenant_id, call.param("transactionId"),
                                                 call.body))


HANDLERS: dict[str, Handler] = {
    "tenant": tenant, "companies": companies, "users": users,
    "customfields.list": fields_list, "customfields.create": fields_create,
    "customfield.detail": field_detail, "customfield.edit": field_edit,
    "customfield.delete": field_delete, "customfield.values": field_values,
    "transactions.list": tx_list, "transaction.detail": tx_detail,
    "transaction.create": tx_create, "transaction.edit": tx_edit,
}


def handle(state: SandboxState, call: Call) -> Record:
    """Run the handler of ``call.route``; the payload fields of a 200 answer."""
    prefix, _, operation = call.route.name.partition(".")
    if prefix in REFERENCE_PREFIXES:
        return REFERENCE_HANDLERS[operation](state, call, prefix)
    return HANDLERS[call.route.name](state, call)


def reference_list_api(route: Route) -> str | None:
    """The reference kind a list route serves (for 'list changed while paged'), else None."""
    prefix, _, operation = route.name.partition(".")
    return prefix if prefix in REFERENCE_PREFIXES and operation == "list" else None
