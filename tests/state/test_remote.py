"""The remote copy, refresh markers and append tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sync.state.store import StateStore

EXOTIC = {
    "Code": "ZOË-1",
    "Name": "Café 😀 \u200f\u05e9\u05dc\u05d5\u05dd naïve 中文 \U0001f469\u200d\U0001f4bb",
    "Nested": {"list": [1, 2.5, None, True, "ß"], "empty": {}},
    "Quote": "a \"quoted\" \\ back\tslash\n",
}


def test_upsert_and_read_back(store: StateStore) -> None:
    """Upserted records, digests and counts read back per company and kind."""
    store.upsert_remote("uk", "suppliers", [("A", {"Code": "A"}, "d-a"),
                                            ("B", {"Code": "B"}, "d-b")])
    store.upsert_remote("uk", "suppliers", [("B", {"Code": "B", "Name": "x"}, "d-b2")])
    store.upsert_remote("ie", "suppliers", [("A", {"Code": "A", "Name": "other"}, "d-ie")])
    assert store.remote_records("uk", "suppliers") == {
        "A": {"Code": "A"}, "B": {"Code": "B", "Name": "x"}}
    assert store.remote_digests("uk", "suppliers") == {"A": "d-a", "B": "d-b2"}
    assert store.remote_count("uk", "suppliers") == 2
    assert store.remote_count("uk", "currencies") == 0
    assert store.has_remote("uk", "suppliers")
    assert not store.has_remote("uk", "currencies")
    assert not store.has_remote("fr", "suppliers")
    keys, digests = store.remote_key_digests("uk", "suppliers")  # on the driver's cursor
    assert sorted(zip(keys, digests, strict=True)) == [("A", "d-a"), ("B", "d-b2")]
    assert store.remote_key_digests("uk", "currencies") == ([], [])
    assert store.remote_records("ie", "suppliers") == {"A": {"Code": "A", "Name": "other"}}


def test_records_read_by_key(store: StateStore) -> None:
    """The records of some keys (more than one IN list holds), exactly as stored; keys not
    stored, other kinds and other companies are left out."""
    rows = [(f"S{i:05d}", {"Code": f"S{i:05d}", "Name": f"n{i}"}, f"d{i}") for i in range(2500)]
    store.upsert_remote("uk", "suppliers", rows)
    store.upsert_remote("ie", "suppliers", [("S00001", {"Code": "S00001"}, "x")])
    store.upsert_remote("uk", "suppliers", [("ZOË-1", EXOTIC, "e")])
    wanted = ["S00001", "S02499", "missing", "S01200", "S00001", "ZOË-1",
              *(f"S{i:05d}" for i in range(1000, 2100))]
    got = store.remote_records_of("uk", "suppliers", wanted)
    assert set(got) == set(wanted) - {"missing"}
    assert got["S02499"] == {"Code": "S02499", "Name": "n2499"}
    assert got["ZOË-1"] == EXOTIC
    assert store.remote_records_of("uk", "currencies", ["S00001"]) == {}
    assert store.remote_records_of("uk", "suppliers", []) == {}


def test_unicode_and_emoji_round_trip_exactly(store: StateStore) -> None:
    """Non-ASCII text, emoji, RTL marks, nesting and escapes come back unchanged."""
    digest = "sha256:" + "0f" * 32
    store.upsert_remote("uk", "suppliers", [("ZOË-1", EXOTIC, digest)])
    assert store.remote_records("uk", "suppliers") == {"ZOË-1": EXOTIC}
    assert store.remote_digests("uk", "suppliers") == {"ZOË-1": digest}
    assert store.remote_key_digests("uk", "suppliers") == (["ZOË-1"], [digest])


def test_delete_ignores_absent_keys(store: StateStore) -> None:
    """Deleting removes just the named keys of that company and kind."""
    rows = [(f"K{i}", {"Code": f"K{i}"}, f"d{i}") for i in range(5)]
    store.upsert_remote("uk", "tax_codes", rows)
    store.upsert_remote("ie", "tax_codes", rows)
    store.delete_remote("uk", "tax_codes", ["K1", "K3", "nope"])
    assert sorted(store.remote_digests("uk", "tax_codes")) == ["K0", "K2", "K4"]
    assert store.remote_count("ie", "tax_codes") == 5


def test_replace_sets_the_whole_kind(store: StateStore) -> None:
    """Replace drops records not given and keeps other kinds untouched."""
    store.upsert_remote("uk", "currencies", [("GBP", {"Code": "GBP"}, "1"), ("EUR", {}, "2")])
    store.upsert_remote("uk", "tax_codes", [("T1", {}, "t")])
    store.replace_remote("uk", "currencies", [("USD", {"Code": "USD"}, "3")])
    assert store.remote_records("uk", "currencies") == {"USD": {"Code": "USD"}}
    assert store.remote_count("uk", "tax_codes") == 1


def test_large_batches(store: StateStore) -> None:
    """More rows than one batch (and more keys than one IN list) are stored and deleted."""
    rows = [(f"S{i:05d}", {"Code": f"S{i:05d}", "Name": "n" * 40}, f"{i:064x}")
            for i in range(2500)]
    store.replace_remote("uk", "suppliers", rows)
    assert store.remote_count("uk", "suppliers") == 2500
    store.delete_remote("uk", "suppliers", (key for key, _, _ in rows[:2100]))
    assert store.remote_count("uk", "suppliers") == 400


def test_refresh_marker_lifecycle(store: StateStore) -> None:
    """begin, advance and end a refresh; markers are listed per company."""
    expires = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    store.begin_refresh("uk", "suppliers", total_chunks=4, plan_hash="ph1")
    store.begin_refresh("ie", "tax_codes", total_chunks=1, plan_hash="ph2")
    store.advance_refresh("uk", "suppliers", chunks_sent=2, token="tok-2", token_expires_at=expires)
    (uk,) = store.open_refreshes("uk")
    assert (uk.chunks_sent, uk.total_chunks, uk.last_token, uk.plan_hash) == (2, 4, "tok-2", "ph1")
    assert uk.token_expires_at == expires
    assert uk.started_at.tzinfo is not None
    assert [r.company for r in store.open_refreshes()] == ["ie", "uk"]
    store.end_refresh("uk", "suppliers")
    assert [r.kind for r in store.open_refreshes()] == ["tax_codes"]


def test_begin_refresh_restarts_a_marker(store: StateStore) -> None:
    """Beginning again replaces the earlier marker and its progress."""
    store.begin_refresh("uk", "suppliers", total_chunks=4, plan_hash="old")
    store.advance_refresh("uk", "suppliers", chunks_sent=3, token="t",
                          token_expires_at=datetime.now(UTC))
    store.begin_refresh("uk", "suppliers", total_chunks=2, plan_hash="new")
    (marker,) = store.open_refreshes()
    assert (marker.chunks_sent, marker.last_token, marker.plan_hash) == (0, None, "new")


def test_advance_without_begin_is_refused(store: StateStore) -> None:
    """Advancing a refresh that was never begun is a caller error."""
    with pytest.raises(ValueError, match="begin_refresh"):
        store.advance_refresh("uk", "suppliers", chunks_sent=1, token="t",
                              token_expires_at=datetime.now(UTC))


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    """A datetime without a zone is refused rather than guessed."""
    store.begin_refresh("uk", "suppliers", total_chunks=1, plan_hash="p")
    with pytest.raises(ValueError, match="naive"):
        store.advance_refresh("uk", "suppliers", chunks_sent=1, token="t",
                              token_expires_at=datetime(2030, 1, 1))


def test_append_token_set_replace_clear(store: StateStore) -> None:
    """The append token is stored per company and kind, replaced, and cleared."""
    assert store.append_token("uk", "suppliers") is None
    first = datetime.now(UTC) + timedelta(minutes=5)
    store.set_append_token("uk", "suppliers", "tok-1", first)
    store.set_append_token("uk", "suppliers", "tok-2", first + timedelta(minutes=1))
    assert store.append_token("uk", "suppliers") == ("tok-2", first + timedelta(minutes=1))
    assert store.append_token("ie", "suppliers") is None
    store.clear_append_token("uk", "suppliers")
    assert store.append_token("uk", "suppliers") is None


def test_lone_surrogates_in_a_record_round_trip(store: StateStore) -> None:
    """Text no database can hold as UTF-8 is stored escaped and reads back unchanged."""
    record = {"Name": "half \ud83d pair", "Other": "é"}
    store.upsert_remote("uk", "suppliers", [("A", record, "d")])
    assert store.remote_records("uk", "suppliers") == {"A": record}


def test_a_key_that_cannot_be_stored_is_a_clear_error(store: StateStore) -> None:
    """A key with a lone surrogate is refused naming the write; nothing is stored."""
    with pytest.raises(ValueError, match="storing uk/suppliers remote records"):
        store.upsert_remote("uk", "suppliers", [("ok", {}, "d"), ("bad\udc80", {}, "d")])
    assert store.remote_count("uk", "suppliers") == 0


def test_the_key_digest_query_reads_the_same_pairs_in_another_process(store: StateStore) -> None:
    """On a SQLite file, the query handed to the reader process gives the pairs the lists
    give (this kind of this company only); elsewhere (PostgreSQL) there is none."""
    from connectors.sqlite_child import close_idle, read_query

    store.upsert_remote("uk", "suppliers",
                        [(f"K{i:03d}é", {"Code": f"K{i:03d}é"}, f"d{i}") for i in range(300)])
    store.upsert_remote("other", "suppliers", [("X", {"Code": "X"}, "dx")])
    query = store.remote_key_digest_query("uk", "suppliers")
    if store._db.dialect != "sqlite":
        assert query is None
        return
    assert query is not None
    try:
        table = read_query(*query, 30)
    finally:
        close_idle()
    assert table is not None
    keys, digests = store.remote_key_digests("uk", "suppliers")
    assert sorted(zip(*(table.column(i).to_pylist() for i in (0, 1)), strict=True)) == sorted(
        zip(keys, digests, strict=True))
    assert len(keys) == 300


def test_checked_values_are_kept_per_company_kind_and_check(store: StateStore) -> None:
    """Checked values read back byte for byte (every byte value, a few MB) per company, kind
    and check name; keeping a name again replaces its rules and bytes, the others stay."""
    big = bytes(range(256)) * 20_000
    store.keep_checked_values("uk", "suppliers", "r1", {"iban": big, "vat": b"\x00v"})
    store.keep_checked_values("ie", "suppliers", "r1", {"iban": b"other"})
    store.keep_checked_values("uk", "suppliers", "r1", {})  # nothing to keep: no write
    assert store.checked_values("uk", "suppliers") == {"iban": ("r1", big),
                                                       "vat": ("r1", b"\x00v")}
    store.keep_checked_values("uk", "suppliers", "r2", {"vat": b""})
    assert store.checked_values("uk", "suppliers") == {"iban": ("r1", big), "vat": ("r2", b"")}
    assert store.checked_values("ie", "suppliers") == {"iban": ("r1", b"other")}
    assert store.checked_values("uk", "currencies") == {}
