"""Every state test runs on SQLite and on PostgreSQL (the latter marked ``postgres``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sync.state import StateStore

OpenStore = Callable[[], StateStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A URL for an empty state database on one backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('state') / 'state.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture
def open_store(state_url: str) -> Iterator[OpenStore]:
    """Opens more stores (own engines, like other processes) on the same database."""
    opened: list[StateStore] = []

    def _open() -> StateStore:
        opened.append(StateStore.open(state_url, timeout=10))
        return opened[-1]

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> StateStore:
    """An open, migrated state store."""
    return open_store()
