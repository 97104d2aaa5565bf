"""Every state test runs on SQLite and on PostgreSQL (the latter marked ``postgres``).

``state_url`` is an EMPTY database (for migration and open tests); ``store`` and
``open_store`` use a database already at the head revision (on PostgreSQL a copy of a template
migrated once per session, which keeps the suite fast).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import make_url

from sync.state.store import StateStore
from tests.fixtures.postgres import fresh_database

OpenStore = Callable[[], StateStore]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend this test runs on."""
    name: str = request.param
    return name


def _sqlite_url(factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{factory.mktemp('state') / 'state.db'}"


@pytest.fixture
def state_url(backend: str, request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> str:
    """A URL for an empty state database on this test's backend."""
    if backend == "sqlite":
        return _sqlite_url(tmp_path_factory)
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture(scope="session")
def pg_state_template(pg_url: str) -> Iterator[str]:
    """The name of a PostgreSQL database migrated to the head, to copy for each test."""
    with fresh_database(pg_url) as url:
        StateStore.open(url).close()
        name = make_url(url).database
        assert name is not None
        yield name


@pytest.fixture
def migrated_url(backend: str, request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL for a state database already at the head revision, for this test alone."""
    if backend == "sqlite":
        yield _sqlite_url(tmp_path_factory)
        return
    template = request.getfixturevalue("pg_state_template")
    with fresh_database(request.getfixturevalue("pg_url"), template) as url:
        yield url


@pytest.fixture
def open_store(migrated_url: str) -> Iterator[OpenStore]:
    """Opens stores (each with its own engine, like separate processes) on one database."""
    opened: list[StateStore] = []

    def _open() -> StateStore:
        opened.append(StateStore.open(migrated_url, timeout=10))
        return opened[-1]

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> StateStore:
    """An open state store at the head revision."""
    return open_store()
