"""A separate process that posts transactions through a sink built from its configuration.

Run through a ``forkserver`` context that preloads this module (so each process starts in
milliseconds instead of importing pandas and SQLAlchemy again). :func:`run` builds the sink from
its ``[sinks.NAME]`` table, reports ``"ready"``, waits for ``go`` (so several processes post at
the same moment), posts every transaction and reports each posting as (id, journal, created).
With ``die_after_post`` it SIGKILLs itself right after the first post returns, before reporting
it: the caller "forgets" a committed posting.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from pydantic import TypeAdapter

from connectors.base import CompanyRef
from connectors.factory import build_sink
from connectors.icompleat.models import parse_transaction
from sync.foundation.config import SinkConfig


def run(job: dict[str, Any], out: Any, go: Any) -> None:
    """Post ``job["transactions"]`` through the sink ``job["sink"]``; report on ``out``."""
    sink = build_sink(job["name"], TypeAdapter(SinkConfig).validate_python(job["sink"]))
    company = CompanyRef(*job["company"])
    transactions = [parse_transaction(raw) for raw in job["transactions"]]
    out.put("ready")
    if go is not None and not go.wait(30):
        raise TimeoutError("never told to go")
    try:
        for tx in transactions:
            posting = sink.post(tx, company)
            if job.get("die_after_post"):
                # The queue writes from a feeder thread: flush "ready" to the pipe before the
                # kill, or a quick post can leave it unsent and the parent waits in vain.
                out.close()
                out.join_thread()
                os.kill(os.getpid(), signal.SIGKILL)
            out.put((posting.transaction_id, posting.journal_number, posting.created))
    finally:
        sink.close()
