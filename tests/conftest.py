"""Shared fixtures: the sandbox over loopback HTTP and a PostgreSQL server (when available)."""

pytest_plugins = ["tests.fixtures.sandbox", "tests.fixtures.postgres"]
