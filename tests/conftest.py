"""Fixtures shared by several test files, among them a real PostgreSQL for the storage tests.

PostgreSQL: ``FEEDWATCH_TEST_PG`` (a URL whose user may create databases) is used when set;
otherwise a throwaway cluster is started once per session (``tests/pg.py``) from the installed
server binaries. Without binaries the PostgreSQL tests are skipped, except under CI (``CI``
set), where that is a failure. Every test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.pg import TempCluster, find_bindir


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    external = os.environ.get("FEEDWATCH_TEST_PG")
    if external:
        yield external
        return
    bindir = find_bindir()
    if bindir is None:
        why = (
            "PostgreSQL server binaries not found (Debian: apt-get install postgresql; or set "
            "FEEDWATCH_TEST_PG to a server URL)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run the PostgreSQL tests")
        pytest.skip(why)
    cluster = TempCluster(bindir)
    try:
        url = cluster.start()
    except Exception as exc:
        cluster.stop()
        pytest.fail(f"could not start a throwaway PostgreSQL: {exc}")
    try:
        yield url
    finally:
        cluster.stop()


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped after the test."""
    name = f"fw_{secrets.token_hex(6)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
