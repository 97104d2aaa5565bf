"""Shared fixtures: the sandbox over loopback HTTP, a PostgreSQL server (when available), and
the suite-wide canary check that no secret reaches an output."""

import pytest

pytest_plugins = [
    "tests.fixtures.profiles", "tests.fixtures.sandbox", "tests.fixtures.postgres",
    "tests.fixtures.canary",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long (``slow``) tests first: with several workers they start together and the
    short ones fill in around them, instead of a long one starting last and keeping the whole
    run waiting for it. The order within each group is the file order."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
