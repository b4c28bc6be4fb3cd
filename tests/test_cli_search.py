"""`feedwatch search` as a user runs it, and the issue's end-to-end: `feedwatch demo --keep`, then
`feedwatch search` and `feedwatch web` find the same articles."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from monitor.settings import ServerSettings, load_config
from monitor.web.serve import serve
from tests.dashboard_site import KNOWN, build_database
from tests.harness import feedwatch


@pytest.fixture(scope="module")
def site_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_database(tmp_path_factory.mktemp("search"))


async def test_found_ranked_and_highlighted(site_config: Path) -> None:
    code, out, err = await feedwatch(
        "search", '"evacuation order" hill', "--since", "7d", "--config", str(site_config)
    )
    assert code == 0, err
    assert out.startswith("1. Wildfire forces [evacuation order] in the [hill] villages\n")
    assert "Harbour Gazette" in out and "alerted: evacuations" in out
    assert "1 article found" in out
    code, out, _ = await feedwatch("search", "evacuat* NOT drill", "--json", "-c", str(site_config))
    assert code == 0
    results = json.loads(out)["results"]
    assert {r["title"] for r in results} >= {KNOWN}
    assert not any("drill" in r["title"] for r in results)
    first = results[0]
    assert set(first) == {"id", "title", "url", "feed", "published", "fetched_at", "rank",
                          "snippet", "highlights", "watchlists"}  # fmt: skip
    for a, b in first["highlights"]:
        assert first["snippet"][a:b].lower().startswith("evacuat")


async def test_filters_by_feed_tag_watchlist(site_config: Path) -> None:
    cfg = str(site_config)
    code, out, _ = await feedwatch("search", "evacuation", "--feed", "Harbour Gazette", "-c", cfg)
    assert code == 0 and "Hostile" not in out and KNOWN.split()[0] in out
    code, out, _ = await feedwatch("search", "evacuation", "--tag", "odd", "-c", cfg)
    assert code == 0 and "window.pwned" in out and KNOWN not in out
    assert "\x1b" not in out and "<script>" in out  # the terminal gets text, never escapes
    code, out, _ = await feedwatch("search", "strike", "--watchlist", "ports", "-c", cfg)
    assert code == 0 and "Dock workers" in out


async def test_none_found_bad_query_unknown_feed(site_config: Path) -> None:
    cfg = str(site_config)
    code, out, err = await feedwatch("search", "zeppelin", "-c", cfg)
    assert (
        code == 3 and out == "" and err.strip() == "feedwatch: no stored article matches 'zeppelin'"
    )
    code, _, err = await feedwatch("search", '"evacuation', "-c", cfg)
    assert code == 1 and "closing quote" in err and "Traceback" not in err
    code, _, err = await feedwatch("search", "NOT drill", "-c", cfg)
    assert code == 1 and "cannot only exclude" in err
    code, _, err = await feedwatch("search", "x", "--feed", "Nope", "-c", cfg)
    assert code == 1 and "no configured feed named 'Nope'" in err
    code, _, err = await feedwatch("search", "x", "--watchlist", "nope", "-c", cfg)
    assert code == 1 and "no watchlist named 'nope'" in err
    code, _, err = await feedwatch("search", "x", "--since", "soon", "-c", cfg)
    assert code == 1 and "--since" in err


async def test_search_never_creates_a_database(tmp_path: Path) -> None:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(f"storage: {{url: {tmp_path / 'data' / 'fw.db'}}}\n")
    code, _out, err = await feedwatch("search", "anything", "--config", str(path))
    assert code == 3 and "no database yet" in err
    assert not (tmp_path / "data").exists()


async def test_demo_keep_then_search_and_web_show_the_same_articles(tmp_path: Path) -> None:
    code, out, err = await feedwatch("demo", "--keep", str(tmp_path / "demo"))
    assert code == 0, err
    config = tmp_path / "demo" / "feedwatch.yaml"
    assert f"feedwatch web --config {config}" in out
    code, out, err = await feedwatch(
        "search", "evacuation order", "--since", "7d", "-c", str(config)
    )
    assert code == 0, err
    cli_titles = re.findall(r"^\d+\. (.+)$", out, re.M)
    cli_titles = [t.replace("[", "").replace("]", "") for t in cli_titles]
    assert "Wildfires force evacuation order for three hill villages" in cli_titles

    cfg = load_config(config, env={})  # no server: block, so 127.0.0.1:9308; a free port here
    cfg = cfg.model_copy(update={"server": ServerSettings(listen="127.0.0.1:0")})
    stop = asyncio.Event()
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(cfg, stop, port.set_result))
    try:
        async with asyncio.timeout(30):
            base = f"http://127.0.0.1:{await port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/") as resp:
                overview = await resp.text()
            async with http.get(base + "/feeds") as resp:
                feeds = await resp.text()
            async with http.get(
                base + "/articles", params={"q": "evacuation order", "since": "7d"}
            ) as resp:
                found = await resp.text()
    finally:
        stop.set()
        assert await task == 0
    assert "Harbour Gazette" in feeds and "Northern Science Desk" in feeds
    assert "<mark>" in overview and "wildfire-evacuations" in overview
    web_titles = [
        re.sub(r"</?mark>", "", t)
        for t in re.findall(r'<a class="title" href="/articles/\d+">(.*?)</a>', found)
    ]
    assert web_titles == cli_titles
