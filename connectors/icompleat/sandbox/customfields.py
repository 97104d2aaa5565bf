"""Custom fields: list (active fields), detail with values, create / edit / delete a field, and
replace or append list values with the same continuation-token rules as the reference kinds.

An unknown field id is ErrorCode 21. Two active fields may not share a name (compared
case-insensitively): the engine finds a field by its name, so a second one would make that
ambiguous. Lists are in name order.
"""

from __future__ import annotations

from typing import Any

from connectors.icompleat.sandbox.core import Company, CustomField, StateCore, Tenant, fold
from connectors.icompleat.sandbox.references import check_chunk, check_token
from connectors.icompleat.sandbox.store import RecordSet
from connectors.icompleat.sandbox.validate import clean_definition, clean_value, describe
from connectors.icompleat.sandbox.wire import NO_CUSTOM_FIELD, Record, invalid, new_id, reject

VALUES_PAYLOAD = "CustomFieldListItems"
FIELDS_PAYLOAD = "CustomFields"


def fields_scope(tenant_id: str, company_id: str) -> str:
    """The store scope of one company's field definitions."""
    return f"cf:{fold(tenant_id)}:{fold(company_id)}"


def values_scope(tenant_id: str, company_id: str, field_id: str) -> str:
    """The store scope of one field's values."""
    return f"cfv:{fold(tenant_id)}:{fold(company_id)}:{fold(field_id)}"


class CustomFieldOps(StateCore):
    """Operations on custom fields and their values."""

    def _loaded(self, tenant: Tenant) -> None:
        super()._loaded(tenant)
        for company in tenant.companies.values():
            for _, doc in self.store.items(fields_scope(tenant.id, company.id)):
                definition = {k: v for k, v in doc.items() if k != "Id"}
                self._attach(tenant.id, company, doc["Id"], definition)

    def _attach(self, tenant_id: str, company: Company, field_id: str,
                definition: Record) -> CustomField:
        values = RecordSet(values_scope(tenant_id, company.id, field_id), self.store)
        custom = CustomField(field_id, definition, values)
        company.fields[fold(field_id)] = custom
        return custom

    def _field(self, tenant_id: str, company_id: str | None, field_id: str) -> CustomField:
        found = self.company(tenant_id, company_id).fields.get(fold(field_id))
        if found is None:
            raise reject(NO_CUSTOM_FIELD, f"no custom field with Id {field_id!r}; list the "
                                          "custom fields to see their ids")
        return found

    def _save(self, tenant_id: str, company: Company, custom: CustomField) -> None:
        self.store.put(fields_scope(tenant_id, company.id), fold(custom.id),
                       {"Id": custom.id, **custom.definition})

    def _sorted(self, company: Company) -> list[CustomField]:
        return sorted(company.fields.values(),
                      key=lambda f: (fold(f.definition["Name"]), fold(f.id)))

    def list_fields(self, tenant_id: str, company_id: str | None) -> list[Record]:
        """``{Id, Name}`` of every ACTIVE field."""
        with self._lock:
            company = self.company(tenant_id, company_id)
            return [f.summary() for f in self._sorted(company) if f.definition["Active"]]

    def all_fields(self, tenant_id: str, company_id: str | None) -> list[Record]:
        """Every field (active or not) with its values, for checkers."""
        with self._lock:
            return [f.detail() for f in self._sorted(self.company(tenant_id, company_id))]

    def field_detail(self, tenant_id: str, company_id: str | None, field_id: str) -> Record:
        """The field with its values (ErrorCode 21 when unknown)."""
        with self._lock:
            return self._field(tenant_id, company_id, field_id).detail()

    def _check_name_free(self, company: Company, name: str, where: str,
                         own_id: str | None = None) -> None:
        for other in company.fields.values():
            if (fold(other.definition["Name"]) == fold(name) and other.definition["Active"]
                    and other.id != own_id):
                raise invalid(where, "Name", f"{name!r} is already the name of custom field "
                                             f"{other.id}; edit that field instead")

    def create_fields(self, tenant_id: str, company_id: str | None, items: Any) -> list[Record]:
        """Create each ``{Name, Type, Mandatory}``; the created fields with their ids."""
        chunk = check_chunk(items, FIELDS_PAYLOAD)
        clean = [clean_definition(raw, describe(FIELDS_PAYLOAD, i, raw))
                 for i, raw in enumerate(chunk)]
        names = [fold(d["Name"]) for d in clean]
        if len(set(names)) != len(names):
            raise invalid(FIELDS_PAYLOAD, "Name", "repeats a name within one call; send each "
                                                  "field once")
        with self._lock:
            company = self.company(tenant_id, company_id)
            for i, definition in enumerate(clean):
                self._check_name_free(company, definition["Name"], f"{FIELDS_PAYLOAD}[{i}]")
            created = [self._attach(tenant_id, company, new_id(), d) for d in clean]
            for custom in created:
                self._save(tenant_id, company, custom)
            return [c.detail() for c in created]

    def edit_field(self, tenant_id: str, company_id: str | None, field_id: str,
                   body: Any) -> Record:
        """Change a field's Name, Type, Mandatory or Active (values are left alone)."""
        where = f"CustomField (Id {field_id!r})"
        changes = clean_definition(body, where, partial=True)
        with self._lock:
            company = self.company(tenant_id, company_id)
            custom = self._field(tenant_id, company_id, field_id)
            merged = {**custom.definition, **changes}
            if merged["Active"]:
                self._check_name_free(company, merged["Name"], where, own_id=custom.id)
            custom.definition = merged
            self._save(tenant_id, company, custom)
            return custom.detail()

    def delete_field(self, tenant_id: str, company_id: str | None, field_id: str) -> None:
        """Delete a field and its values (ErrorCode 21 when unknown)."""
        with self._lock:
            company = self.company(tenant_id, company_id)
            custom = self._field(tenant_id, company_id, field_id)
            custom.values.drop()
            del company.fields[fold(custom.id)]
            self.store.delete(fields_scope(tenant_id, company.id), fold(custom.id))

    def post_values(self, tenant_id: str, company_id: str | None, field_id: str, items: Any,
                    token: Any) -> str:
        """Replace the values (no token) or append to the set being built (token)."""
        chunk = check_chunk(items, VALUES_PAYLOAD)
        values = [clean_value(raw, describe(VALUES_PAYLOAD, i, raw))
                  for i, raw in enumerate(chunk)]
        with self._lock:
            target = self._field(tenant_id, company_id, field_id).values
            text = check_token(token)
            if text is None:
                target.replace(values)
                return self.tokens.issue(target, self.now(), self.token_ttl)
            self.tokens.extend(text, target, self.now(), self.token_ttl)
            target.merge(values)
            return text
