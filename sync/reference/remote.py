"""Reading a kind's remote list in full, as canonical records keyed like the state DB.

One read serves settling (:mod:`sync.reference.settle`), read-back and custom fields, so it
lives below all of them. Custom fields are read as their active definitions plus each field's
values; the definitions are kept in the remote copy under :data:`DEFINITIONS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.reference.apply import KindRun, Records, canonical, frame_records

DEFINITIONS = "custom_fields.definitions"
DEF_FIELDS = ("Type", "Mandatory")


@dataclass
class RemoteRead:
    """One complete read of a kind's remote list, canonical, with the calls it took."""

    records: Records
    digests: dict[str, str]
    reads: int
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)


async def read_remote(run: KindRun) -> RemoteRead:
    """Every remote record of the run's kind, as canonical records keyed like the state."""
    if run.kind.field_values:
        return await read_custom_fields(run)
    raw: list[dict[str, Any]] = []
    pages = 0
    async for page in run.rt.client.reference_pages(run.kind.api, run.company.company_id):
        raw.extend(page)
        pages += 1
    pages += 1  # the empty page that ended the list
    run.result.reads += pages
    run.result.calls += pages
    frame = await asyncio.to_thread(canonical, run.kind, raw)
    records, digests = frame_records(run.kind, frame)
    return RemoteRead(records, digests, pages)


async def read_custom_fields(run: KindRun) -> RemoteRead:
    """Every active field with its values, as canonical value rows plus the definitions."""
    client, cid = run.rt.client, run.company.company_id
    fields = await client.custom_fields(cid)
    details = [await client.custom_field(cid, str(f["Id"])) for f in fields]
    run.result.reads += 1 + len(details)
    run.result.calls += 1 + len(details)
    rows, definitions = [], {}
    for detail in details:
        name = str(detail.get("Name"))
        definitions[name] = {"Id": str(detail.get("Id")), "Name": name,
                             **{f: detail.get(f) for f in DEF_FIELDS}}
        rows += [{"Field": name, "Code": v.get("Code"), "Name": v.get("Name"),
                  **{f: detail.get(f) for f in DEF_FIELDS}} for v in detail.get("Values") or []]
    frame = await asyncio.to_thread(canonical, run.kind, rows)
    records, digests = frame_records(run.kind, frame)
    return RemoteRead(records, digests, 1 + len(details), definitions)

def definition_digest(definition: Mapping[str, Any]) -> str:
    text = json.dumps({k: definition.get(k) for k in ("Name", *DEF_FIELDS)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def definition_rows(definitions: Mapping[str, Mapping[str, Any]]
                    ) -> list[tuple[str, dict[str, Any], str]]:
    """Remote-copy rows (name, definition, digest) of field definitions."""
    return [(n, dict(d), definition_digest(d)) for n, d in sorted(definitions.items())]
