"""Custom fields: definitions first, then each changed field's values as that field's own set.

iCompleat keys a custom field by an ``Id`` it assigns and its list values by ``Code`` within the
field; icsync keys value rows ``Field + KEY_SEP + Code`` (the source names fields, not ids). The
remote copy keeps the value rows under kind ``custom_fields`` and the definitions (name -> Id,
Type, Mandatory) under :data:`DEFINITIONS`. For each field the diff touches:

- a field new to iCompleat is created (all new fields in ONE POST), one whose Type or Mandatory
  changed is PUT, one gone from the source is DELETEd (after the guard and the delete policy);
- when its values differ, the field's complete value list is posted in chunks of 100 (a POST
  without token replaces the list), under a refresh marker ``custom_fields/<field>`` so a run that
  dies half way re-sends the list on the next start.

Operations on fields are journalled with the field names as keys; :func:`settle_fields` settles
them from a read of the fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sync.foundation.entities import WRITE_CHUNK_SIZE, chunked
from sync.foundation.errors import ApiError, AuthRejected, BadRequest, OutcomeUnknown
from sync.reference.apply import (
    ApplyOutcome,
    KindRun,
    Records,
    send_rows,
)
from sync.reference.remote import DEF_FIELDS, DEFINITIONS, definition_digest
from sync.reference.rules.keys import field_of

MARKER_PREFIX = "custom_fields/"


def by_field(records: Records) -> dict[str, Records]:
    """Value rows grouped by field name."""
    groups: dict[str, Records] = {}
    for key, record in records.items():
        groups.setdefault(field_of(key), {})[key] = record
    return groups


def definition_of(rows: Records) -> dict[str, Any]:
    """A field's definition as the source states it: Type and Mandatory of its first row."""
    first = rows[min(rows)]
    return {"Name": first["Field"], **{f: first.get(f) for f in DEF_FIELDS}}








async def apply_fields(run: KindRun, touched: Iterable[str], source: Records,
                       digests: Mapping[str, str], *, allow_delete: bool,
                       force: Iterable[str] = ()) -> ApplyOutcome:
    """Bring every field in ``touched`` in line with ``source`` (value rows of all fields);
    fields in ``force`` (an interrupted value list) have their values posted again."""
    store, company = run.rt.store, run.company.name
    state = by_field(await run.db(store.remote_records, company, run.kind.name))
    defs = await run.db(store.remote_records, company, DEFINITIONS)
    wanted = by_field(source)
    out = ApplyOutcome()
    try:
        await _create_missing(run, sorted(f for f in touched if f in wanted and f not in defs),
                              wanted, defs)
        for name in sorted(set(touched) | set(force)):
            await _one_field(run, name, wanted.get(name, {}), state.get(name, {}), defs,
                             digests, allow_delete, name in set(force))
    except AuthRejected:
        raise
    except OutcomeUnknown:
        out.completed = False
    except ApiError as exc:
        out.completed = False
        out.stopped = run.not_applied(exc)
    return out


async def _create_missing(run: KindRun, names: list[str], wanted: dict[str, Records],
                          defs: dict[str, dict[str, Any]]) -> None:
    if not names:
        return
    body = [definition_of(wanted[n]) for n in names]
    op_id, created = await run.journaled("fields_create", names, "", lambda: (
        run.rt.client.create_custom_fields(run.company.company_id, body)))
    found = {str(c.get("Name")): c for c in created}
    new = {n: {**definition_of(wanted[n]), "Id": str(found[n].get("Id"))}
           for n in names if n in found}
    defs.update(new)
    await run.acknowledged(op_id, lambda: run.rt.store.upsert_remote(
        run.company.name, DEFINITIONS, [(n, d, definition_digest(d)) for n, d in new.items()],
        fence=run.fence))


async def _one_field(run: KindRun, name: str, wanted: Records, state: Records,
                     defs: dict[str, dict[str, Any]], digests: Mapping[str, str],
                     allow_delete: bool, force: bool) -> None:
    if name not in defs:
        return  # creation was refused or not acknowledged: nothing to attach values to
    if not wanted:
        if allow_delete:
            await _delete_field(run, name, defs[name], list(state))
        return
    target = definition_of(wanted)
    if any(target.get(f) != defs[name].get(f) for f in DEF_FIELDS):
        await _edit_field(run, name, {**defs[name], **target})
    if force or _values(wanted) != _values(state):
        await _post_values(run, name, defs[name]["Id"], wanted, digests, list(state))


def _values(rows: Records) -> dict[str, Any]:
    return {str(r.get("Code")): r.get("Name") for r in rows.values()}


async def _edit_field(run: KindRun, name: str, definition: dict[str, Any]) -> None:
    body = {k: definition.get(k) for k in ("Name", *DEF_FIELDS)}
    op_id, _ = await run.journaled("field_edit", [name], definition_digest(definition), lambda: (
        run.rt.client.edit_custom_field(run.company.company_id, definition["Id"], body)))
    await run.acknowledged(op_id, lambda: run.rt.store.upsert_remote(
        run.company.name, DEFINITIONS, [(name, definition, definition_digest(definition))],
        fence=run.fence))


async def _delete_field(run: KindRun, name: str, definition: dict[str, Any],
                        value_keys: list[str]) -> None:
    store, company = run.rt.store, run.company.name
    try:
        op_id, _ = await run.journaled("field_delete", [name], "", lambda: (
            run.rt.client.delete_custom_field(run.company.company_id, definition["Id"])))
    except BadRequest as exc:
        if exc.error_code != 21:  # 21: the field is already gone
            raise
        op_id = None

    def forget() -> None:
        store.delete_remote(company, run.kind.name, value_keys, fence=run.fence)
        store.delete_remote(company, DEFINITIONS, [name], fence=run.fence)

    if op_id is None:
        await run.db(forget)
    else:
        await run.acknowledged(op_id, forget)


async def _post_values(run: KindRun, name: str, field_id: str, wanted: Records,
                       digests: Mapping[str, str], old_keys: list[str]) -> None:
    store, company, marker = run.rt.store, run.company.name, MARKER_PREFIX + name
    keys = sorted(wanted)
    values = {k: {"Code": r["Code"], **({"Name": r["Name"]} if r.get("Name") else {})}
              for k, r in wanted.items()}

    async def post(body: list[dict[str, Any]], token: str) -> str:
        return await run.rt.client.post_custom_field_values(run.company.company_id, field_id,
                                                            body, token)

    # An empty list is still one call: it clears the field's values.
    chunks = chunked(keys, WRITE_CHUNK_SIZE) or [[]]
    await run.db(store.begin_refresh, company, marker, total_chunks=len(chunks),
                 plan_hash="", fence=run.fence)
    token = ""
    for chunk in chunks:
        token = await send_rows(run, chunk, values, digests, token, op="field_values",
                                post=post)
    landed = [k for k in keys if k not in run.rejected_keys]

    def replace() -> None:
        gone = [k for k in old_keys if k not in set(landed)]
        store.delete_remote(company, run.kind.name, gone, fence=run.fence)
        store.upsert_remote(company, run.kind.name, [(k, wanted[k], digests[k]) for k in landed],
                            fence=run.fence)
        store.end_refresh(company, marker, fence=run.fence)

    await run.db(replace)

