"""`feedwatch migrate-storage`: the demo's SQLite database moved into a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from storage import open_storage
from tests.harness import feedwatch


async def test_the_demo_database_moves_to_postgresql_and_nothing_is_lost(
    tmp_path: Path, pg_url: str
) -> None:
    keep = tmp_path / "demo"
    code, out, err = await feedwatch("demo", "--keep", str(keep))
    assert code == 0, err
    cfg = tmp_path / "feedwatch.yaml"
    cfg.write_text(f"storage: {{url: {keep / 'demo.db'}}}\n")
    password = pg_url.split(":")[2].split("@")[0]

    code, out, err = await feedwatch("migrate-storage", "--to", pg_url, "--config", str(cfg))
    assert code == 0, err
    assert "copied and verified:" in out and "${PGPASSWORD}@" in out
    assert password not in out + err

    src, dst = open_storage(str(keep / "demo.db")), open_storage(pg_url)
    await src.open("readonly")
    await dst.open("readonly")
    try:
        a, b = await src.list_alerts(), await dst.list_alerts()
        assert [x.id for x in a] == [x.id for x in b] and len(a) == 4
        assert [[d.state for d in x.deliveries] for x in a] == [
            [d.state for d in x.deliveries] for x in b
        ]
        fa, fb = await src.list_feeds(), await dst.list_feeds()
        assert [(f.key, f.etag, f.next_poll) for f in fa] == [
            (f.key, f.etag, f.next_poll) for f in fb
        ]
    finally:
        await src.close()
        await dst.close()

    # Run again into the same database: refused (it holds data), with the way out named.
    code, out, err = await feedwatch("migrate-storage", "--to", pg_url, "--config", str(cfg))
    assert code == 1 and "is not empty" in err and password not in err
    code, out, err = await feedwatch(
        "migrate-storage", "--to", pg_url, "--replace", "--config", str(cfg)
    )
    assert code == 0, err
