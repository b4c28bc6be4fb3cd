"""`feedwatch try` end to end: the real CLI (in-process), pages on a loopback server, local
files, and `--stored` over a SQLite database filled by a real `run --once`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.harness import feedwatch
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom, page

WATCHLISTS = """
  - name: wildfire-evacuations
    keywords: [wildfire*, "evacuation order"]
    places: [Lisbon, Bath]
    exclude: [drill*]
    channels: [terminal]
  - name: fema-fires
    keywords: [wildfire*]
    require: [FEMA]
    channels: [terminal]
  - name: other-desk
    keywords: [wildfire*]
    feeds: [Elsewhere]
    channels: [terminal]
"""

FIRE = Item(
    "hill-fire",
    "Villages evacuated as flames spread",
    [
        "Civil protection officials issued an evacuation order for three hill villages on "
        "Tuesday night as wildfires driven by dry winds moved down the valley.",
        "Buses took about 1,200 residents to a sports hall in the market town.",
    ],
    summary="Residents of three villages were told to leave overnight.",
)
LISBOA = Item(
    "lisboa-heat",
    "Heat record broken in the capital",
    [
        "Thermometers in central Lisboa reached 44 degrees on Sunday, the highest reading since "
        "records began, the weather service said.",
        "Hospitals reported a rise in admissions among elderly residents.",
    ],
)
CYCLE = Item(  # its page's chrome mentions wildfire, FEMA, evacuation order and Lisbon
    "cycle-lanes",
    "Council approves new cycle lanes",
    [
        "The city council approved protected cycle lanes along the main avenue after two years "
        "of consultations and a petition signed by 6,000 residents.",
        "Bath time is over for the old plans, one councillor joked.",
    ],
)
DRILL = Item(
    "school-drill",
    "Fire brigade runs drill at primary school",
    [
        "The fire brigade ran a planned drill at the primary school on Friday, timing how long "
        "340 pupils took to leave after a simulated evacuation order.",
    ],
)


def write_config(tmp_path: Path, server: HostileServer, feeds: list[tuple[str, str]]) -> Path:
    """A config whose watchlists the tests try; "Elsewhere" is a feed with no items."""
    feeds = [*feeds, (Newsroom(server).add(Feed("/elsewhere.xml", "Elsewhere")), "Elsewhere")]
    feed_lines = "\n".join(f"  - url: {url}\n    name: {name}" for url, name in feeds)
    text = textwrap.dedent(
        f"""
storage:
  url: {tmp_path / "fw.db"}
fetch:
  allow_private_networks: true
  timeout: 10s
extraction:
  workers: 1
delivery:
  drain_seconds: 5
feeds:
{feed_lines}
channels:
  terminal: {{type: console}}
watchlists:
{WATCHLISTS}
"""
    )
    path = tmp_path / "feedwatch.yaml"
    path.write_text(text)
    return path


async def cli(*args: str) -> tuple[int, str, str]:
    return await feedwatch(*args, env={"NO_COLOR": "1"})


def blocks(out: str) -> dict[str, str]:
    """Output block per source line (the line under the heading), for focused assertions."""
    found: dict[str, str] = {}
    for block in out.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("! error  "):
            found[lines[0].removeprefix("! error  ")] = block
        elif len(lines) >= 2:
            found[lines[1].strip()] = block
    return found


@pytest.fixture
async def server() -> Any:
    async with HostileServer() as srv:
        yield srv


async def test_pages_and_files_explain_every_match_and_every_miss(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    room.add(Feed("/w.xml", "W", [FIRE, LISBOA, CYCLE, DRILL]))
    fire, lisboa, cycle, drill = (room.page_url(i.slug) for i in (FIRE, LISBOA, CYCLE, DRILL))
    gone = server.url("/status/404")
    (tmp_path / "note.txt").write_text(
        "Wildfire near Lisbon\nA wildfire broke out on the edge of Lisbon on Sunday.\n"
    )
    (tmp_path / "saved.html").write_bytes(
        page("Storm damage", ["High winds brought down trees across the region overnight."])
    )
    (tmp_path / "evil.txt").write_text(  # a hostile page cannot drive the terminal
        "\x1b[2J\x1b[31mWildfire\x1b[0m alert\x07\nA wildfire \x1b]0;pwned\x07near the coast.\n"
    )
    cfg = write_config(tmp_path, server, [])
    note, saved, evil = (str(tmp_path / n) for n in ("note.txt", "saved.html", "evil.txt"))
    args = ["try", "--config", str(cfg), "--watchlist", "wildfire-evacuations"]
    srcs = [fire, lisboa, cycle, drill, gone, note, saved, str(tmp_path / "nope.txt"), evil]
    code, out, err = await cli(*args, *srcs)
    assert code == 3, err  # two pages could not be read: attention
    assert err == "feedwatch: 2 of 9 pages could not be read\n"
    by = blocks(out)
    assert out.splitlines()[0] == (
        "watchlist wildfire-evacuations: keywords wildfire*, evacuation order · "
        "places Lisbon, Bath · exclude drill*"
    )

    # a match: kind, term, text as found, field, snippet with the match highlighted
    assert by[fire].startswith("✓ MATCH  Villages evacuated as flames spread")
    assert "keyword 'evacuation order': found 'evacuation order' in the body" in by[fire]
    assert "officials issued an [evacuation order] for three hill villages" in by[fire]
    assert "keyword 'wildfire*': found 'wildfires' in the body" in by[fire]
    assert "Tuesday night as [wildfires] driven by dry winds" in by[fire]
    # another spelling of a watched place
    assert by[lisboa].startswith("✓ MATCH  Heat record broken in the capital")
    assert "place 'Lisbon': found 'Lisboa' in the body" in by[lisboa]
    assert "Thermometers in central [Lisboa] reached 44 degrees" in by[lisboa]

    # chrome (nav, sidebar, comments, footer) mentions every term but is never read
    assert by[cycle].startswith("✗ no match  Council approves new cycle lanes")
    assert "why: no keyword or place found (1 place mention set aside, see below)" in by[cycle]
    assert (
        "place 'Bath': 'Bath' in the body: also a common word, and here at the start" in by[cycle]
    )
    assert "[Bath] time is over" in by[cycle]
    assert "Lisbon" not in by[cycle] and "FEMA" not in by[cycle]
    assert "wildfire" not in by[cycle].lower()

    # excluded: says by what, where, and what was found all the same
    assert by[drill].startswith("✗ no match  Fire brigade runs drill at primary school")
    assert "why: excluded by 'drill*', found 'drill' in the title" in by[drill]
    assert "found all the same:" in by[drill]
    assert "after a simulated [evacuation order]." in by[drill]

    # a page that does not exist, a file that does not exist: one readable line each
    assert by[gone].startswith("! error")
    assert "fetch failed" in by[gone] and "404" in by[gone]
    assert by[str(tmp_path / "nope.txt")].endswith("no such file (give an http(s) URL or a path)")
    # local files: text (first line is the title) and saved HTML (extracted)
    assert "keyword 'wildfire*': found 'Wildfire' in the title" in by[note]
    assert "place 'Lisbon': found 'Lisbon' in the title" in by[note]  # strongest: title
    assert by[saved].startswith("✗ no match  Storm damage")
    assert by[evil].startswith("✓ MATCH  Wildfire alert")
    assert "\x1b" not in out and "\x07" not in out
    assert out.rstrip().endswith("4 of 9 pages match watchlist 'wildfire-evacuations'")

    # the same as JSON
    code, out, err = await cli(*args, "--json", fire, drill, cycle, gone)
    assert code == 3, err  # `gone` could not be fetched
    data = json.loads(out)
    assert data["watchlist"] == "wildfire-evacuations"
    res = {r["source"]: r for r in data["results"]}
    assert res[fire]["matched"] is True and res[fire]["reasons"] == []
    m = res[fire]["matches"][0]
    assert set(m) >= {"kind", "term", "text", "snippet", "field"}
    assert (m["kind"], m["term"], m["text"], m["field"]) == (
        "keyword",
        "evacuation order",
        "evacuation order",
        "body",
    )
    assert res[drill]["matched"] is False
    assert res[drill]["reasons"] == ["excluded by 'drill*', found 'drill' in the title"]
    assert [x["term"] for x in res[drill]["found_anyway"]] == ["evacuation order"]
    assert res[cycle]["set_aside"][0]["text"] == "Bath"
    assert res[gone]["error"] and res[gone]["matched"] is False


async def test_require_missing_and_usage_errors(tmp_path: Path, server: HostileServer) -> None:
    room = Newsroom(server)
    room.add(Feed("/w.xml", "W", [FIRE]))
    cfg = write_config(tmp_path, server, [])
    base = ["try", "--config", str(cfg)]
    code, out, err = await cli(*base, "-w", "fema-fires", room.page_url(FIRE.slug))
    assert code == 0, err
    assert "why: required term 'FEMA' missing" in out
    assert "keyword 'wildfire*': found 'wildfires' in the body" in out  # found all the same

    code, out, err = await cli(*base, "-w", "nope", "x.html")
    assert code != 0 and out == ""
    assert err.strip() == (
        "feedwatch: no watchlist named 'nope' "
        "(watchlists: wildfire-evacuations, fema-fires, other-desk)"
    )
    code, _out, err = await cli(*base, "-w", "fema-fires")
    assert code != 0 and err.strip() == "feedwatch: give one or more URLs or files, or --stored"
    code, _out, err = await cli(*base, "-w", "fema-fires", "--stored", "--since", "soon")
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert err.startswith("feedwatch: --since 'soon': ") and "Traceback" not in err


async def test_stored_reruns_a_watchlist_over_articles_from_run_once(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    feed = room.add(Feed("/w.xml", "W", [FIRE, LISBOA, CYCLE, DRILL]))
    cfg = write_config(tmp_path, server, [(feed, "World")])
    code, _out, err = await cli("run", "--once", "--config", str(cfg))
    assert code == 0, err

    base = ["try", "--config", str(cfg), "--stored", "--since", "1d"]
    code, out, err = await cli(*base, "-w", "wildfire-evacuations")
    assert code == 0, err
    by = blocks(out)
    # what it would have alerted: the two matching stories, with feed and date
    assert set(by) == {room.page_url(FIRE.slug), room.page_url(LISBOA.slug)}
    fire = by[room.page_url(FIRE.slug)]
    assert fire.startswith("✓ MATCH  Villages evacuated as flames spread")
    assert fire.splitlines()[2].startswith("  World · 20")
    assert "[wildfires]" in fire
    assert "place 'Lisbon': found 'Lisboa' in the body" in by[room.page_url(LISBOA.slug)]
    assert out.rstrip().endswith(
        "2 of 4 stored articles from the last 1d would have alerted watchlist "
        "'wildfire-evacuations'"
    )

    # the feeds filter applies to stored articles: this watchlist only watches "Elsewhere"
    code, out, err = await cli(*base, "-w", "other-desk", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["results"] == [] and data["stored"] == {"since": "1d", "checked": 4}
