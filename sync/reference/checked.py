"""The values the per-value checks (IBAN, BIC, VAT) found good, kept in the state database
from one run of a kind to the next, so that each value is judged by the libraries once.

Each check's values are kept as one Arrow IPC stream of one text column, under the rules
(``checks.CHECKED_RULES``: the libraries' versions) that judged them. Values kept under other
rules, or that cannot be read back, are judged again: the cost of losing them is time, never a
wrong verdict. A run that applies keeps the good values of the source it read (those gone from
the source are dropped), and only when they changed; a dry run uses them and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from sync.foundation.logs import get_logger
from sync.reference.apply import KindRun
from sync.reference.rules.checks import CHECKED_RULES

log = get_logger("icsync.engine")

_COLUMN = "value"


def encode(values: Any) -> bytes:
    """Arrow text values as an Arrow IPC stream of one column."""
    batch = pa.record_batch([values.cast(pa.string())], names=[_COLUMN])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def decode(blob: bytes) -> Any:
    """The text values of an :func:`encode` stream; None when it is not one."""
    try:
        table = pa.ipc.open_stream(blob).read_all()
    except (pa.ArrowException, ValueError, TypeError, OSError):
        return None
    if table.schema.names != [_COLUMN] or not pa.types.is_string(table.schema.types[0]):
        return None
    return table.column(0).combine_chunks()


async def known(run: KindRun) -> dict[str, Any]:
    """By check name, the values its check found good in the kind's last run, under this
    version's rules."""
    stored = await run.db(run.rt.store.checked_values, run.company.name, run.kind.name)
    out: dict[str, Any] = {}
    for name, (rules, blob) in stored.items():
        if rules != CHECKED_RULES:
            continue  # judged by other library versions: judged again
        values = decode(blob)
        if values is None:
            log.warning("kept check values unreadable, every value is checked again",
                        company=run.company.name, kind=run.kind.name, check=name)
            continue
        out[name] = values
    return out


async def keep(run: KindRun, checked: Mapping[str, Any]) -> None:
    """Keep ``checked`` (by check name, the good values of this run) for the next run."""
    if checked:  # encoded off the event loop: a million values take most of 0.1 s
        blobs = await asyncio.to_thread(lambda: {name: encode(v) for name, v in checked.items()})
        await run.db(run.rt.store.keep_checked_values, run.company.name, run.kind.name,
                     CHECKED_RULES, blobs, fence=run.fence)
