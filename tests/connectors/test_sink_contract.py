"""The TransactionSink contract, run against every implementation (SQL, files, memory)."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.process import BaseProcess
from typing import Any

import pytest

from connectors.base import Posting, TransactionSink
from sync.foundation.errors import SinkRejected
from tests.connectors import poster
from tests.connectors.conftest import SinkCase
from tests.connectors.data import COMPANY, detail, transaction


def test_implements_the_protocol(sink_case: SinkCase) -> None:
    """Every implementation is a TransactionSink; an unknown id is not found."""
    assert isinstance(sink_case.sink, TransactionSink)
    assert sink_case.sink.find("no-such-transaction") is None


def test_post_then_find(sink_case: SinkCase) -> None:
    """A post creates one entry with a journal number that find returns."""
    tx = transaction(1)
    posting = sink_case.sink.post(tx, COMPANY)
    assert posting.created
    assert posting.transaction_id == tx.id
    assert posting.journal_number
    assert sink_case.sink.find(tx.id) == Posting(tx.id, posting.journal_number, created=False)
    assert sink_case.count(tx.id) == 1


def test_post_twice_is_one_entry(sink_case: SinkCase) -> None:
    """A second post makes nothing new and returns the same journal, created False."""
    tx = transaction(2)
    first = sink_case.sink.post(tx, COMPANY)
    second = sink_case.sink.post(tx, COMPANY)
    assert (first.created, second.created) == (True, False)
    assert second.journal_number == first.journal_number
    assert sink_case.count(tx.id) == 1


def test_distinct_transactions_get_distinct_journals(sink_case: SinkCase) -> None:
    """Each transaction has its own entry and journal number."""
    postings = [sink_case.sink.post(transaction(n), COMPANY) for n in range(3, 8)]
    assert len({p.journal_number for p in postings}) == 5


def test_rejected_document_makes_no_entry(sink_case: SinkCase) -> None:
    """A document the ERP cannot take raises SinkRejected and leaves nothing behind."""
    tx = transaction(9, supplier=None)
    with pytest.raises(SinkRejected) as caught:
        sink_case.sink.post(tx, COMPANY)
    assert caught.value.transaction_id == tx.id
    assert "supplier_code" in str(caught.value)
    assert caught.value.reason
    assert sink_case.sink.find(tx.id) is None
    assert sink_case.count(tx.id) == 0


def test_concurrent_threads_make_one_entry(sink_case: SinkCase) -> None:
    """Eight threads posting the same transactions at once make one entry each."""
    txs = [transaction(n) for n in range(20, 24)]
    barrier = threading.Barrier(8, timeout=30)

    def worker(k: int) -> list[Posting]:
        sink = sink_case.build_again() if k % 2 else sink_case.sink
        barrier.wait()
        return [sink.post(tx, COMPANY) for tx in txs[k % 4:] + txs[:k % 4]]

    with ThreadPoolExecutor(8) as pool:
        results = [p for ps in pool.map(worker, range(8)) for p in ps]
    _check_one_entry_each(sink_case, [tx.id for tx in txs], results)


def _check_one_entry_each(case: SinkCase, ids: list[str], postings: list[Posting]) -> None:
    created = Counter(p.transaction_id for p in postings if p.created)
    for tx_id in ids:
        assert case.count(tx_id) == 1, tx_id
        assert created[tx_id] == 1, tx_id
        journals = {p.journal_number for p in postings if p.transaction_id == tx_id}
        assert journals == {case.sink.find(tx_id).journal_number}  # type: ignore[union-attr]


CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["tests.connectors.poster"])


def _poster(case: SinkCase, raws: list[dict[str, Any]], go: Any = None,
            **job: Any) -> tuple[BaseProcess, Any]:
    """Start a process posting ``raws`` through a sink built from ``case.config``."""
    out = CONTEXT.Queue()
    job = {"name": "erp", "sink": case.config, "transactions": raws,
           "company": [COMPANY.name, COMPANY.company_id], **job}
    proc = CONTEXT.Process(target=poster.run, args=(job, out, go), daemon=True)
    proc.start()
    return proc, out


def _postings(proc: BaseProcess, out: Any, expected: int) -> list[Posting]:
    """The ``expected`` postings a poster reports, then its clean exit."""
    results = [Posting(*out.get(timeout=60)) for _ in range(expected)]
    proc.join(60)
    assert proc.exitcode == 0
    return results


def test_concurrent_processes_make_one_entry(sink_case: SinkCase) -> None:
    """Two processes posting the same transactions at the same moment make one entry each."""
    if sink_case.config is None:
        pytest.skip("an in-memory sink lives in one process")
    raws = [detail(n) for n in range(30, 40)]
    go = CONTEXT.Event()
    posters = [_poster(sink_case, raws, go) for _ in range(2)]
    for _proc, out in posters:
        assert out.get(timeout=60) == "ready"
    go.set()
    results = [p for proc, out in posters for p in _postings(proc, out, len(raws))]
    _check_one_entry_each(sink_case, [raw["Id"] for raw in raws], results)


def test_crash_after_commit_is_found(sink_case: SinkCase) -> None:
    """A poster killed right after the ERP commit left an entry that find returns, once."""
    raw = detail(50)
    if sink_case.config is None:
        sink_case.sink.post(transaction(50), COMPANY)  # the answer is "forgotten"
    else:
        proc, out = _poster(sink_case, [raw], die_after_post=True)
        assert out.get(timeout=60) == "ready"
        proc.join(60)
        assert proc.exitcode == -signal.SIGKILL
        assert out.empty()  # the caller never learnt the journal number
    fresh = sink_case.build_again()
    found = fresh.find(raw["Id"])
    assert found is not None
    assert found.journal_number
    again = fresh.post(transaction(50), COMPANY)
    assert again == Posting(raw["Id"], found.journal_number, created=False)
    assert sink_case.count(raw["Id"]) == 1
