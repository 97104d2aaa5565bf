"""Shared fixtures: the sandbox over loopback HTTP, a PostgreSQL server (when available), and
the suite-wide canary check that no secret reaches an output."""

pytest_plugins = [
    "tests.fixtures.profiles", "tests.fixtures.sandbox", "tests.fixtures.postgres",
    "tests.fixtures.canary",
]
