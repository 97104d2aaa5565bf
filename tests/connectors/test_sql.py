"""The SQL source and sink beyond the contract: tables, timeouts, mapping, journal numbers."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Posting
from connectors.sql import SqlSink, SqlSource
from sync.foundation.config import SqlSinkConfig, SqlSourceConfig
from sync.foundation.errors import ConfigError, SinkError, SinkRejected, SourceError
from sync.foundation.secrets import Secret
from tests.connectors.conftest import run_sql
from tests.connectors.data import COMPANY, transaction

CANARY = "canary-Pa55word-7f3e"


def source(url: str, **kinds: dict[str, Any]) -> SqlSource:
    """A SQL source named erp with the given kind tables."""
    return SqlSource("erp", SqlSourceConfig(type="sql", url=url, timeout_seconds=5,
                                            kinds=kinds))  # type: ignore[arg-type]


def sink(url: str, **options: Any) -> SqlSink:
    """A SQL sink named erp."""
    return SqlSink("erp", SqlSinkConfig(type="sql", url=url, timeout_seconds=5, **options))


@pytest.fixture
def erp(tmp_path: Path) -> str:
    """The URL of an empty SQLite ERP database."""
    return f"sqlite:///{tmp_path / 'erp.db'}"


def test_table_is_read_whole_with_a_quoted_name(erp: str) -> None:
    """A `table` (with a space and capitals in its name) is reflected and read entirely."""
    run_sql(erp, 'CREATE TABLE "Tax Codes" ("Code" TEXT, "Rate" NUMERIC)',
            """INSERT INTO "Tax Codes" VALUES ('0042', 20), ('Z', 0)""")
    src = source(erp, tax_codes={"table": "Tax Codes"})
    frame = src.read("tax_codes", COMPANY).frame
    src.close()
    assert frame.to_dict("records") == [{"Code": "0042", "Rate": 20}, {"Code": "Z", "Rate": 0}]


def test_company_id_is_a_bound_parameter(erp: str) -> None:
    """`:company_id` is bound like `:company`; extra parameters in the query are not needed."""
    run_sql(erp, "CREATE TABLE s (cid TEXT, Code TEXT)",
            f"INSERT INTO s VALUES ('{COMPANY.company_id}', 'A'), ('other', 'B')")
    src = source(erp, suppliers={"query": "SELECT Code FROM s WHERE cid = :company_id"})
    assert list(src.read("suppliers", COMPANY).frame["Code"]) == ["A"]
    src.close()


def test_query_and_table_together_is_a_config_error(erp: str) -> None:
    """Each kind needs exactly one of query or table, checked when the source is built."""
    with pytest.raises(ConfigError) as caught:
        source(erp, suppliers={"query": "SELECT 1", "table": "s"})
    assert caught.value.key == "sources.erp.kinds.suppliers"


def test_a_runaway_sqlite_query_is_interrupted(erp: str) -> None:
    """A statement running past timeout_seconds fails as a SourceError instead of hanging."""
    forever = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) AS Code FROM n")
    src = SqlSource("erp", SqlSourceConfig(type="sql", url=erp, timeout_seconds=0.3,
                                           kinds={"suppliers": {"query": forever}}))  # type: ignore[dict-item]
    started = time.monotonic()
    with pytest.raises(SourceError, match="interrupted"):
        src.read("suppliers", COMPANY)
    assert time.monotonic() - started < 5
    src.close()


def test_password_never_reaches_the_error() -> None:
    """An unreachable server's error names the source and kind but masks the password."""
    src = SqlSource("erp", SqlSourceConfig(
        type="sql", url="postgresql+psycopg://erp@127.0.0.1:1/erp", timeout_seconds=2,
        kinds={"suppliers": {"query": "SELECT 1"}}),  # type: ignore[dict-item]
        password=Secret(CANARY, origin="test"))
    with pytest.raises(SourceError) as caught:
        src.read("suppliers", COMPANY)
    text = f"{caught.value} {caught.value!r} {caught.value.__cause__}"
    assert CANARY not in text
    assert "sources.erp.kinds.suppliers" in str(caught.value)
    assert "***" in str(caught.value)
    src.close()


def test_header_and_lines_hold_the_transaction(erp: str) -> None:
    """The default tables get the header fields, every line, amounts and the full JSON."""
    tx = transaction(7, lines=3)
    erp_sink = sink(erp)
    posting = erp_sink.post(tx, COMPANY)
    erp_sink.close()
    assert posting.journal_number == "J00000001"
    header = run_sql(erp, "SELECT company, identifier, supplier_code, currency, gross_local, "
                          "invoice_date, raw_json, journal_number FROM icsync_transactions")
    assert header[0][:6] == (COMPANY.name, "INV-00007", "0042", "GBP", 840, "2024-05-01")
    assert '"Title": "Office chairs ☕"' in header[0][6]
    lines = run_sql(erp, "SELECT line_number, account_code, tax_code, description, quantity "
                         "FROM icsync_transaction_lines ORDER BY line_number")
    assert lines == [(1, "5000", "S", "Chair 1 😀", 2), (2, "5000", "S", "Chair 2 😀", None),
                     (3, "5000", "S", "Chair 3 😀", 2)]


def test_journal_from_the_erps_own_statement(erp: str) -> None:
    """journal_sql runs in the posting's transaction, with bound values, exactly once."""
    run_sql(erp, "CREATE TABLE gl (id INTEGER PRIMARY KEY, ref TEXT, gross NUMERIC)")
    erp_sink = sink(erp, journal_sql="INSERT INTO gl (ref, gross) VALUES (:transaction_id, "
                                     ":gross_local) RETURNING 'GL-' || printf('%06d', id)")
    tx = transaction(3)
    first = erp_sink.post(tx, COMPANY)
    second = erp_sink.post(tx, COMPANY)
    erp_sink.close()
    assert (first.journal_number, second) == ("GL-000001", Posting(tx.id, "GL-000001", False))
    assert run_sql(erp, "SELECT ref, gross FROM gl") == [(tx.id, 360)]


def test_erp_refusal_in_journal_sql_rolls_everything_back(erp: str) -> None:
    """A trigger refusing the posting (closed period) is SinkRejected and leaves no rows."""
    run_sql(erp, "CREATE TABLE gl (id INTEGER PRIMARY KEY, ref TEXT)",
            "CREATE TRIGGER closed BEFORE INSERT ON gl BEGIN "
            "SELECT RAISE(ABORT, 'period 2024-05 is closed'); END")
    erp_sink = sink(erp, journal_sql="INSERT INTO gl (ref) VALUES (:transaction_id) "
                                     "RETURNING id")
    with pytest.raises(SinkRejected, match="period 2024-05 is closed"):
        erp_sink.post(transaction(4), COMPANY)
    erp_sink.close()
    assert run_sql(erp, "SELECT count(*) FROM icsync_transactions") == [(0,)]
    assert run_sql(erp, "SELECT count(*) FROM icsync_transaction_lines") == [(0,)]


def test_unknown_journal_parameter_is_a_config_error(erp: str) -> None:
    """A parameter journal_sql cannot be given is refused when the sink is built."""
    with pytest.raises(ConfigError, match="nope") as caught:
        sink(erp, journal_sql="SELECT :nope")
    assert caught.value.key == "sinks.erp.journal_sql"


ERP_HEADER = ('CREATE TABLE "GL Header" (DocNo INTEGER PRIMARY KEY AUTOINCREMENT, '
              "ExtRef TEXT NOT NULL UNIQUE, SupplierAccount VARCHAR(8) NOT NULL, "
              "identifier VARCHAR(12), Amount NUMERIC, JournalRef TEXT)")
ERP_MAPPING = {"id": "DocNo", "transaction_id": "ExtRef", "supplier_code": "SupplierAccount",
               "gross_local": "Amount", "journal_number": "JournalRef"}


def erp_sink(url: str, **options: Any) -> SqlSink:
    """A sink over the ERP's own header table, without lines."""
    run_sql(url, ERP_HEADER)
    return sink(url, create_tables=False, header_table="GL Header", lines_table="",
                header_columns=ERP_MAPPING, journal_prefix="PJ", journal_digits=5, **options)


def test_mapping_onto_the_erps_own_table(erp: str) -> None:
    """Mapped columns are written; unmapped canonical ones only where the table has them."""
    target = erp_sink(erp)
    posting = target.post(transaction(5), COMPANY)
    target.close()
    assert posting.journal_number == "PJ00001"
    rows = run_sql(erp, 'SELECT ExtRef, SupplierAccount, identifier, Amount, JournalRef '
                        'FROM "GL Header"')
    assert rows == [(transaction(5).id, "0042", "INV-00005", 600, "PJ00001")]


def test_not_null_violation_names_the_field(erp: str) -> None:
    """A NOT NULL constraint the ERP enforces becomes SinkRejected naming the field."""
    target = erp_sink(erp)
    with pytest.raises(SinkRejected, match="supplier_code") as caught:
        target.post(transaction(6, supplier=None), COMPANY)
    target.close()
    assert caught.value.reason == "erp_constraint"
    assert run_sql(erp, 'SELECT count(*) FROM "GL Header"') == [(0,)]


def test_value_too_long_for_its_column_is_rejected(erp: str) -> None:
    """A value longer than the ERP column is refused before writing, naming the field."""
    target = erp_sink(erp)
    with pytest.raises(SinkRejected, match=r"supplier_code has 12 characters.*holds 8") as c:
        target.post(transaction(8, supplier="SUPPLIER-123"), COMPANY)
    target.close()
    assert c.value.reason == "too_long"


def test_mapped_column_missing_is_a_config_error(erp: str) -> None:
    """A mapping to a column the table lacks names the mapping key."""
    run_sql(erp, ERP_HEADER)
    target = sink(erp, create_tables=False, header_table="GL Header", lines_table="",
                  header_columns={**ERP_MAPPING, "currency": "Curr"})
    with pytest.raises(ConfigError) as caught:
        target.find("x")
    target.close()
    assert caught.value.key == "sinks.erp.header_columns.currency"


def test_unknown_supplier_is_rejected(erp: str) -> None:
    """required_supplier_table refuses a transaction whose supplier the ERP does not know."""
    run_sql(erp, 'CREATE TABLE "Vendors" (acct TEXT)', """INSERT INTO "Vendors" VALUES ('0042')""")
    target = sink(erp, required_supplier_table="Vendors", required_supplier_column="acct")
    assert target.post(transaction(10), COMPANY).created
    with pytest.raises(SinkRejected, match="'9999' is not in the ERP") as caught:
        target.post(transaction(11, supplier="9999"), COMPANY)
    target.close()
    assert caught.value.reason == "unknown_supplier"


def test_concurrent_insert_integrity_error_means_found(erp: str) -> None:
    """Without the lock, losing the insert race to another writer returns its posting."""
    winner, loser = sink(erp), sink(erp, serialise=False)
    tx = transaction(12)
    first = winner.post(tx, COMPANY)
    real_find = loser.find
    calls: list[str] = []

    def find_after_the_race(tx_id: str) -> Posting | None:
        calls.append(tx_id)
        return None if len(calls) == 1 else real_find(tx_id)  # first look: not there yet

    loser.find = find_after_the_race  # type: ignore[method-assign]
    second = loser.post(tx, COMPANY)
    winner.close()
    loser.close()
    assert second == Posting(tx.id, first.journal_number, created=False)
    assert len(calls) == 2
    assert run_sql(erp, "SELECT count(*) FROM icsync_transaction_lines") == [(2,)]


def test_config_errors_name_their_keys(erp: str) -> None:
    """Unknown mapping keys, a dropped id column and an unsafe serialise are refused."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"header_columns": {"nope": "x"}}, "sinks.erp.header_columns.nope"),
        ({"header_columns": {"transaction_id": ""}}, "sinks.erp.header_columns.transaction_id"),
        ({"serialise": False, "unique_index": False}, "sinks.erp.serialise"),
        ({"required_fields": ["supplier"]}, "sinks.erp.required_fields"),
        ({"url": "not a url"}, "sinks.erp.url"),
        ({"url": "mssql+pyodbc://erp@host/db"}, "sinks.erp.url"),
    ]
    for options, key in cases:
        with pytest.raises(ConfigError) as caught:
            sink(**{"url": erp, **options})
        assert caught.value.key == key, options


def test_no_generated_key_needs_journal_sql(erp: str) -> None:
    """A table without the key column works only with journal_sql."""
    run_sql(erp, "CREATE TABLE h (ext TEXT UNIQUE, jn TEXT)")
    mapping = {"transaction_id": "ext", "journal_number": "jn"}
    bare = sink(erp, create_tables=False, header_table="h", lines_table="",
                header_columns=mapping)
    with pytest.raises(ConfigError) as caught:
        bare.find("x")
    assert caught.value.key == "sinks.erp.journal_sql"
    bare.close()
    with_sql = sink(erp, create_tables=False, header_table="h", lines_table="",
                    header_columns=mapping, journal_sql="SELECT 'EXT-' || :identifier")
    assert with_sql.post(transaction(13), COMPANY).journal_number == "EXT-INV-00013"
    assert with_sql.find(transaction(13).id) == Posting(transaction(13).id, "EXT-INV-00013",
                                                        False)
    with_sql.close()


def test_unreachable_database_is_a_sink_error_without_the_password() -> None:
    """A database that cannot be reached is SinkError (not a rejection) with the URL masked."""
    target = SqlSink("erp", SqlSinkConfig(type="sql", url="postgresql+psycopg://e@127.0.0.1:1/x",
                                          timeout_seconds=2), password=Secret(CANARY))
    with pytest.raises(SinkError) as caught:
        target.post(transaction(14), COMPANY)
    assert not isinstance(caught.value, SinkRejected)
    assert CANARY not in f"{caught.value} {caught.value.__cause__}"
    target.close()


@pytest.mark.postgres
def test_postgres_procedure_gives_the_journal_and_may_refuse(pg_test_url: str) -> None:
    """An ERP posting function supplies the number; its RAISE is a rejection, rolled back."""
    suffix = uuid.uuid4().hex[:8]
    run_sql(pg_test_url, f"CREATE SEQUENCE gl_{suffix}",
            f"""CREATE FUNCTION erp_post_{suffix}(ref text, gross numeric, d date) RETURNS text
                AS $$ BEGIN
                  IF d < DATE '2024-06-01' AND gross > 1000 THEN
                    RAISE EXCEPTION 'period % is closed', to_char(d, 'YYYY-MM');
                  END IF;
                  RETURN 'GL' || lpad(nextval('gl_{suffix}')::text, 6, '0');
                END $$ LANGUAGE plpgsql""")
    table = f"tx_{suffix}"
    target = sink(pg_test_url, header_table=table, lines_table=f"{table}_lines",
                  journal_sql=f"SELECT erp_post_{suffix}(:transaction_id, :gross_local, "
                              ":invoice_date)")
    try:
        assert target.post(transaction(1), COMPANY).journal_number == "GL000001"
        with pytest.raises(SinkRejected, match="period 2024-05 is closed"):
            target.post(transaction(9), COMPANY)  # gross 1080
        amounts = run_sql(pg_test_url, f"SELECT gross_local FROM {table}")
        assert amounts == [(Decimal("120.0000"),)]
    finally:
        target.close()
        run_sql(pg_test_url, f"DROP TABLE {table}", f"DROP TABLE {table}_lines",
                f"DROP FUNCTION erp_post_{suffix}", f"DROP SEQUENCE gl_{suffix}")


def test_supplier_check_follows_the_reference_key_rule(erp: str) -> None:
    """A transaction's supplier is found ignoring case and surrounding spaces, as reference
    codes are matched; supplier_match = "exact" makes the difference a setting."""
    run_sql(erp, 'CREATE TABLE "Vendors" (acct TEXT)', """INSERT INTO "Vendors" VALUES ('ab01 ')""")
    target = sink(erp, required_supplier_table="Vendors", required_supplier_column="acct")
    assert target.post(transaction(20, supplier="AB01"), COMPANY).created
    target.close()
    exact = sink(erp, required_supplier_table="Vendors", required_supplier_column="acct",
                 supplier_match="exact")
    with pytest.raises(SinkRejected, match="'AB01' is not in the ERP"):
        exact.post(transaction(21, supplier="AB01"), COMPANY)
    exact.close()


def test_lines_link_to_the_headers_generated_key(erp: str) -> None:
    """Lines written into the ERP's own line table point at the header row's generated key
    (line_columns.header_id), with no iCompleat id column on the lines."""
    run_sql(erp, ERP_HEADER, 'CREATE TABLE "GL Lines" (LineNo INTEGER PRIMARY KEY, '
                             "DocNo INTEGER NOT NULL REFERENCES \"GL Header\"(DocNo), "
                             "Nominal TEXT, Net NUMERIC)")
    target = sink(erp, create_tables=False, header_table="GL Header", lines_table="GL Lines",
                  header_columns=ERP_MAPPING, journal_prefix="PJ", journal_digits=5,
                  line_columns={"id": "LineNo", "header_id": "DocNo", "account_code": "Nominal",
                                "net": "Net", "transaction_id": ""})
    first = target.post(transaction(30), COMPANY)
    second = target.post(transaction(31), COMPANY)
    target.close()
    links = run_sql(erp, 'SELECT DISTINCT h.JournalRef FROM "GL Lines" l JOIN "GL Header" h '
                         "ON h.DocNo = l.DocNo ORDER BY 1")
    assert links == [(first.journal_number,), (second.journal_number,)]
