"""Reading a SQLite source's kinds ahead of the run: the very read the kind makes, taken once.

``icsync sync --dry-run`` starts its kinds' reads in the SQLite reader process as soon as its
configuration is loaded (:mod:`connectors.sql_ahead`); the kind's own read then takes the rows.
These tests prove the rows taken are the ones the read would have read (same statement, same
bound company), that nothing else is started ahead, and that a run's outcome and plan do not
change."""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors import sqlite_child
from connectors.base import CompanyRef
from connectors.factory import read_ahead as factory_read_ahead
from connectors.icompleat.sandbox import SandboxServer
from connectors.sql import SqlSource
from connectors.sql_ahead import read_ahead
from sync.cli import main
from sync.demo.data import create_erp, source_settings
from sync.foundation.config import SqlSourceConfig, parse_settings
from tests.erp.support import settings, write_config
from tests.fixtures.sandbox import COMPANY_ID, TENANT_ID

COMPANY = CompanyRef("uk", "c-1", {"ledger": "L1"})
QUERY = ("SELECT Code, Name FROM s WHERE ledger = :ledger AND company = :company_id "
         "ORDER BY Code")


@pytest.fixture(autouse=True)
def nothing_ahead() -> Iterator[None]:
    sqlite_child.discard_ahead()
    yield
    sqlite_child.discard_ahead()
    sqlite_child.close_idle()


@pytest.fixture
def erp(tmp_path: Path) -> Path:
    path = tmp_path / "erp.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE s (Code TEXT, Name TEXT, ledger TEXT, company TEXT)")
        db.executemany("INSERT INTO s VALUES (?, ?, ?, ?)",
                       [(f"S{i}", f"n{i}", "L1" if i % 2 else "L2", "c-1") for i in range(20)])
    return path


def add_supplier(erp: Path, code: str) -> None:
    with closing(sqlite3.connect(erp)) as db, db:
        db.execute("INSERT INTO s VALUES (?, 'late', 'L1', 'c-1')", (code,))


def wait_ahead() -> None:
    for ahead in list(sqlite_child._ahead.values()):
        assert ahead.done.wait(timeout=30)


def source_config(erp: Path, **kinds: dict[str, Any]) -> SqlSourceConfig:
    return SqlSourceConfig(type="sql", url=f"sqlite:///{erp}", kinds=kinds)


def test_the_kind_s_read_takes_the_rows_read_ahead_with_its_company_bound(erp: Path) -> None:
    """Read ahead with the company's parameters, the source's read of the kind takes the rows
    (a supplier added since is not in them: they were not read again); the next read reads."""
    config = source_config(erp, suppliers={"query": QUERY})
    assert read_ahead(config, ["suppliers"], COMPANY) == ["suppliers"]
    wait_ahead()
    add_supplier(erp, "S99")
    source = SqlSource("erp", config)
    try:
        first = source.read("suppliers", COMPANY).frame
        assert sorted(first["Code"]) == sorted(f"S{i}" for i in range(1, 20, 2))
        assert sqlite_child._ahead == {}
        second = source.read("suppliers", COMPANY).frame
        assert "S99" in list(second["Code"])
    finally:
        source.close()


def test_another_company_never_takes_them(erp: Path) -> None:
    config = source_config(erp, suppliers={"query": QUERY})
    assert read_ahead(config, ["suppliers"], COMPANY) == ["suppliers"]
    wait_ahead()
    source = SqlSource("erp", config)
    try:
        other = source.read("suppliers", CompanyRef("uk", "c-1", {"ledger": "L2"})).frame
        assert sorted(other["Code"]) == sorted(f"S{i}" for i in range(0, 20, 2))
        assert len(sqlite_child._ahead) == 1  # still waiting for its own read
    finally:
        source.close()


def test_only_utf8_queries_on_a_sqlite_file_are_read_ahead(erp: Path, tmp_path: Path) -> None:
    """A table (reflected when the kind runs), another encoding, ``arrow = false``, a file that
    does not exist (the read reports it), a server database and a kind not configured are
    read when their kind runs, as before."""
    config = source_config(
        erp, suppliers={"query": QUERY}, currencies={"table": "s"},
        tax_codes={"query": "SELECT Code FROM s", "encoding": "cp1252"},
        account_codes={"query": "SELECT Code FROM s", "encoding_errors": "quarantine"})
    kinds = ["currencies", "tax_codes", "account_codes", "delivery_sites", "suppliers"]
    assert read_ahead(config, kinds, COMPANY) == ["suppliers"]
    no_arrow = config.model_copy(update={"arrow": False})
    assert read_ahead(no_arrow, ["suppliers"], COMPANY) == []
    missing = config.model_copy(update={"url": f"sqlite:///{tmp_path / 'none.db'}"})
    assert read_ahead(missing, ["suppliers"], COMPANY) == []
    assert not (tmp_path / "none.db").exists()
    server = config.model_copy(update={"url": "postgresql+psycopg://u@127.0.0.1:1/erp"})
    assert read_ahead(server, ["suppliers"], COMPANY) == []
    unbound = source_config(erp, suppliers={"query": "SELECT Code FROM s WHERE x = :nope"})
    assert read_ahead(unbound, ["suppliers"], COMPANY) == []


def test_a_files_source_is_not_read_ahead(tmp_path: Path) -> None:
    parsed = parse_settings({
        "sources": {"erp": {"type": "files", "directory": str(tmp_path)}},
        "companies": [{"name": "uk", "company_id": "c0de0000-0000-4000-8000-000000000001",
                       "source": "erp", "kinds": ["suppliers"]}]})
    assert factory_read_ahead(parsed, parsed.companies[0], ["suppliers"]) == []


def _plan(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's kinds without their timings."""
    return [{k: v for k, v in kind.items() if k not in ("seconds", "stages")}
            for company in document["companies"] for kind in company["kinds"]]


def test_sync_reads_its_kinds_ahead_and_plans_the_same(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``icsync sync --dry-run`` starts its SQLite query kinds ahead; each kind takes its own
    rows (one read per kind, none read twice), nothing is left waiting, and the plan and exit
    code are those of a run that reads nothing ahead. A run that applies reads ahead too when
    nobody takes the company's lease meanwhile (the next test shows the other case)."""
    erp = create_erp(tmp_path / "erp.db", suppliers_count=40)
    data = settings(sandbox.url, tmp_path / "state.db", source_settings(erp))
    config = write_config(tmp_path / "icsync.toml", data)
    queries = {spec["query"]: kind for kind, spec in source_settings(erp)["kinds"].items()
               if "query" in spec}
    fetched: list[tuple[str, bool]] = []  # (kind, read ahead) of each query kind's read
    real_fetch = sqlite_child._fetch

    def fetch(request: bytes, timeout: float, ahead: Any = None) -> Any:
        sql = json.loads(request)["sql"]
        if sql in queries:
            fetched.append((queries[sql], ahead is not None))
        return real_fetch(request, timeout, ahead)

    monkeypatch.setattr(sqlite_child, "_fetch", fetch)
    code = main(["sync", "--config", str(config), "--dry-run", "--json"])
    ahead_plan = json.loads(capsys.readouterr().out)
    assert code == 0
    assert len(queries) >= 3
    assert sorted(fetched) == sorted((kind, True) for kind in queries.values())
    assert sqlite_child._ahead == {}

    fetched.clear()
    monkeypatch.setattr("connectors.factory.read_ahead", lambda *a: [])
    assert main(["sync", "--config", str(config), "--dry-run", "--json"]) == 0
    assert _plan(json.loads(capsys.readouterr().out)) == _plan(ahead_plan)
    assert sorted(fetched) == sorted((kind, False) for kind in queries.values())

    fetched.clear()
    monkeypatch.setattr("connectors.factory.read_ahead", factory_read_ahead)
    assert main(["sync", "--config", str(config), "--json"]) == 0
    applied = json.loads(capsys.readouterr().out)
    assert applied["companies"][0]["outcome"] == "ok"
    assert sorted(fetched) == sorted((kind, True) for kind in queries.values())
    assert sqlite_child._ahead == {}


def _track_reads(monkeypatch: pytest.MonkeyPatch, sql: str) -> list[bool]:
    """Each read of ``sql`` the reader makes from now on: True for one made ahead."""
    taken: list[bool] = []
    real_fetch = sqlite_child._fetch

    def fetch(request: bytes, timeout: float, ahead: Any = None) -> Any:
        if json.loads(request)["sql"] == sql:
            taken.append(ahead is not None)
        return real_fetch(request, timeout, ahead)

    monkeypatch.setattr(sqlite_child, "_fetch", fetch)
    return taken


@pytest.mark.parametrize("other_run", [False, True], ids=["lease-untouched", "other-run"])
def test_a_run_that_applies_takes_rows_read_ahead_only_if_nobody_held_the_lease_since(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, other_run: bool) -> None:
    """``icsync sync`` (applying) reads its kinds ahead once it has seen the company's lease
    free. An account is added to the ERP after the read ahead. When another instance (a real
    process) then runs the company, creating that account, this run's rows, read before,
    would undo it: they are dropped, the kind reads again under the lease, and the account
    stays. When nobody held the lease, the rows read ahead are the run's rows (the account
    is the next run's), as for any read made at the start of a run."""
    import sync.cli.sync as sync_command

    erp = create_erp(tmp_path / "erp.db", suppliers_count=5)
    config = write_config(tmp_path / "icsync.toml", settings(
        sandbox.url, tmp_path / "state.db", source_settings(erp)))
    command = ["sync", "--config", str(config), "--kind", "account_codes", "--json"]
    assert main(command) == 0
    before = json.loads(capsys.readouterr().out)["companies"][0]["kinds"][0]
    sql = source_settings(erp)["kinds"]["account_codes"]["query"]
    taken = _track_reads(monkeypatch, sql)
    real_read_ahead = sync_command.read_ahead

    def read_ahead_then_change(*args: Any) -> Any:
        started = real_read_ahead(*args)
        assert started[0] == ["account_codes"]
        wait_ahead()
        with closing(sqlite3.connect(erp)) as db, db:
            db.execute("INSERT INTO gl_accounts VALUES ('9999', 'Added after the read')")
        if other_run:
            other = subprocess.run([sys.executable, "-m", "sync.cli", *command],
                                   capture_output=True, text=True, timeout=120, check=False)
            assert other.returncode == 0, other.stderr
            assert json.loads(other.stdout)["companies"][0]["kinds"][0]["created"] == 1
        return started

    monkeypatch.setattr(sync_command, "read_ahead", read_ahead_then_change)
    assert main(command) == 0
    kind = json.loads(capsys.readouterr().out)["companies"][0]["kinds"][0]
    codes = {r["Code"] for r in sandbox.state.records(TENANT_ID, COMPANY_ID, "account_codes")}
    assert "9999" in codes if other_run else "9999" not in codes
    assert kind["deleted"] == 0
    assert kind["unchanged"] == before["created"] + (1 if other_run else 0)
    # The read made ahead; then, only where it was dropped, the kind's own read.
    assert taken == ([True, False] if other_run else [True])
    assert sqlite_child._ahead == {}
    monkeypatch.setattr(sync_command, "read_ahead", real_read_ahead)
    assert main(command) == 0  # the next run sees the account either way
    after = json.loads(capsys.readouterr().out)["companies"][0]["kinds"][0]
    assert after["created"] == (0 if other_run else 1)
    assert "9999" in {r["Code"] for r in
                      sandbox.state.records(TENANT_ID, COMPANY_ID, "account_codes")}


def test_nothing_is_read_ahead_while_another_instance_holds_the_lease(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run that will wait for the lease reads nothing ahead, nor does one whose state
    database does not exist yet (nothing can be known of its lease)."""
    from sync.cli.sync import add_arguments
    from sync.cli.sync import read_ahead as command_read_ahead
    from sync.foundation.config import load_config
    from sync.state.store import StateStore

    erp = create_erp(tmp_path / "erp.db", suppliers_count=5)
    config_file = write_config(tmp_path / "icsync.toml", settings(
        sandbox.url, tmp_path / "state.db", source_settings(erp)))
    config = load_config(config_file)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--config", str(config_file)])
    assert command_read_ahead(config, args) == ([], None)  # no state database yet
    assert sqlite_child._ahead == {}
    assert main(["sync", "--config", str(config_file), "--kind", "currencies"]) == 0
    capsys.readouterr()
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        fence = store.acquire_lease("uk:reference", "another-instance", 60)
        assert fence is not None
        assert command_read_ahead(config, args) == ([], None)
        assert sqlite_child._ahead == {}
        store.release_lease(fence)
    started, look = command_read_ahead(config, args)
    assert len(started) >= 3
    assert look is not None
    assert look.token == fence.token


def test_a_selection_that_cannot_run_starts_nothing(
        sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    erp = create_erp(tmp_path / "erp.db", suppliers_count=5)
    data = settings(sandbox.url, tmp_path / "state.db", source_settings(erp),
                    company={"kinds": ["suppliers"]})
    config = write_config(tmp_path / "icsync.toml", data)
    assert main(["sync", "--config", str(config), "--dry-run", "--kind", "currencies"]) == 2
    assert "does not sync" in capsys.readouterr().err
    assert sqlite_child._ahead == {}


def test_the_gate_is_asked_only_when_something_can_be_read_ahead(erp: Path) -> None:
    """A run that applies looks at its lease (the gate) only when a kind can be read ahead,
    so a state database that does not answer is not waited for on every run; a gate that says
    no starts nothing."""
    asked: list[bool] = []

    def gate(answer: bool) -> Callable[[], bool]:
        def ask() -> bool:
            asked.append(answer)
            return answer
        return ask

    table_only = source_config(erp, currencies={"table": "s"})
    assert read_ahead(table_only, ["currencies"], COMPANY, gate=gate(True)) == []
    assert asked == []
    config = source_config(erp, suppliers={"query": QUERY})
    assert read_ahead(config, ["suppliers"], COMPANY, gate=gate(False)) == []
    assert asked == [False]
    assert sqlite_child._ahead == {}
    assert read_ahead(config, ["suppliers"], COMPANY, gate=gate(True)) == ["suppliers"]
    assert asked == [False, True]


_PIECES = st.sampled_from([*"ab_1 :\\'\"$%?é,()sx\n[]", ":a", ":b", "::", "\\:", ":é", ":1",
                           "%(", ")s", "__[POSTCOMPILE_", "%%", ":company_id", "\\:x"])


@given(st.lists(_PIECES, max_size=30).map("".join), st.sets(st.sampled_from(
    ["a", "b", "é", "1", "company_id", "x", "s"])))
def test_binds_are_read_as_sqlalchemy_compiles_them(query: str, given_names: set[str]) -> None:
    """The read ahead's statement (no SQLAlchemy) equals the one the source's read compiles,
    whenever it starts one: same SQL, same parameters in the same order, and no statement
    when a parameter is missing. Text SQLAlchemy's own placeholders could be taken for is not
    read ahead (the kind then reads when it runs)."""
    from sqlalchemy import make_url, text

    from connectors.sql_ahead import arrow_statement, qmark_statement

    params = {name: f"v-{name}" for name in given_names}
    mine = qmark_statement(query, params)
    if mine is None and ("%(" in query or "__[POSTCOMPILE" in query):
        return
    assert mine == arrow_statement(make_url("sqlite:///x.db"), text(query), params)


def test_starting_a_read_ahead_imports_no_sqlalchemy(erp: Path) -> None:
    """In a fresh process: the read is on its way before SQLAlchemy is imported (the probe
    can fail: the source's own read does import it)."""
    probe = (
        "import sys, json\n"
        "from connectors.base import CompanyRef\n"
        "from connectors.sql_ahead import read_ahead\n"
        "from sync.foundation.config import SqlSourceConfig\n"
        f"config = SqlSourceConfig(type='sql', url='sqlite:///{erp}', "
        f"kinds={{'suppliers': {{'query': {QUERY!r}}}}})\n"
        "started = read_ahead(config, ['suppliers'], CompanyRef('uk', 'c-1', {'ledger': 'L1'}))\n"
        "before = 'sqlalchemy' in sys.modules\n"
        "from connectors.sql import SqlSource\n"
        "print(json.dumps([started, before, 'sqlalchemy' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=False)
    assert json.loads(out.stdout.splitlines()[-1]) == [["suppliers"], False, True], out.stderr


def test_a_run_asks_for_its_rows_before_importing_sqlalchemy(tmp_path: Path) -> None:
    """In a fresh ``icsync sync`` (one that applies, so the lease is looked at first) on a
    state database that exists: the first read ahead is asked for before SQLAlchemy, pandas
    or pyarrow is imported (they load while the rows are read)."""
    from sync.state.store import StateStore

    erp = create_erp(tmp_path / "erp.db", suppliers_count=5)
    data = settings("http://127.0.0.1:9", tmp_path / "state.db", source_settings(erp))
    config = write_config(tmp_path / "icsync.toml", data)
    StateStore.open(f"sqlite:///{tmp_path / 'state.db'}").close()
    probe = (
        "import json, sys\n"
        "import connectors.sql_ahead as ahead\n"
        "seen = []\n"
        "real = ahead.child_read_ahead\n"
        "def spy(*args, **kwargs):\n"
        "    seen.append([m for m in ('sqlalchemy', 'pandas', 'pyarrow') if m in sys.modules])\n"
        "    return real(*args, **kwargs)\n"
        "ahead.child_read_ahead = spy\n"
        "from sync.cli import main\n"
        f"main(['sync', '--config', {str(config)!r}, '--json'])\n"
        "print('SEEN ' + json.dumps(seen))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("SEEN ")]
    assert lines, out.stderr
    seen = json.loads(lines[-1][5:])
    assert seen, out.stderr
    assert seen[0] == []
