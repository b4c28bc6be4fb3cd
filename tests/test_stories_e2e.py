"""One alert per story, end to end: ten outlets carry one wire story (each with its own headline,
some trimmed, one with a local paragraph, one updating the numbers) and the desk gets one alert
with "also reported by 9"; another event in the same town the next day alerts on its own."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import feedwatch
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import WebhookReceiver

WIRE = [
    "DAYTON, Ohio — A fire destroyed a vacant warehouse on Dayton's east side early Monday, "
    "sending a column of black smoke over the city, the Dayton Fire Department said.",
    "Crews were called to the building on Valley Street at about 3:40 a.m. and found it fully "
    "engulfed, District Chief Brad French said. More than 60 firefighters from Dayton and "
    "neighboring Riverside fought the blaze for four hours. No one was hurt.",
    "The two-story brick warehouse, built in 1926, had been empty since 2011. French said the "
    "roof collapsed shortly after crews arrived, forcing them to fight the fire from outside. "
    "Valley Street was closed between Keowee Street and Troy Street.",
    "The cause is under investigation. The city had ordered the owner to secure the building "
    "last year after complaints about trespassers.",
]
HEADLINES = [
    "Fire destroys vacant warehouse in Dayton; no injuries",
    "Massive fire levels empty east Dayton warehouse",
    "Dayton warehouse fire: roof collapses, 60 firefighters battle blaze",
    "Black smoke over Dayton as vacant warehouse burns",
    "Vacant Dayton warehouse destroyed in early-morning fire",
    "Firefighters from Dayton and Riverside fight warehouse blaze",
    "Empty warehouse on Valley Street burns down",
    "Dayton: warehouse built in 1926 destroyed by fire",
    "Four-hour fight against Dayton warehouse fire",
    "East side warehouse fire under investigation in Dayton",
]
ROBBERY = [
    "DAYTON, Ohio — Dayton police arrested a 34-year-old man Tuesday afternoon about an hour "
    "after a robbery at a bank on Main Street downtown, the Dayton Police Department said.",
    "Officers were called to the branch at about 1:15 p.m. after a man handed a teller a note "
    "demanding cash, Lt. Jason Hall said. No weapon was shown and no one was hurt. The man "
    "left on foot with an undisclosed amount of money.",
    "Officers found him near Riverscape MetroPark after a witness followed him and called 911. "
    "Most of the money was recovered, Hall said.",
]


def copies() -> list[list[str]]:
    """Ten outlets' versions of the wire story, changed the way outlets change wire copy."""
    out = []
    for i in range(10):
        paras = list(WIRE)
        if i in (1, 4, 7):
            paras = paras[:3]  # trimmed ending
        if i == 3:
            paras.append(
                "Neighbours on Keowee Street said they woke to the smell of smoke and sirens."
            )  # a local paragraph
        if i == 6:  # an update: the numbers changed
            paras[1] = (
                paras[1].replace("More than 60", "About 75").replace("four hours", "five hours")
            )
        out.append(paras)
    return out


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv


async def test_ten_outlets_one_alert_and_the_next_days_event_its_own(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    feeds = []
    for i, (title, paras) in enumerate(zip(HEADLINES, copies(), strict=True)):
        item = Item(f"fire-{i}", title, paras, summary="", hours_ago=30 - i)
        feeds.append((room.add(Feed(f"/outlet{i}.xml", f"Outlet {i}", [item])), f"Outlet {i}"))
    robbery = Item("robbery", "Dayton police arrest man after downtown bank robbery", ROBBERY,
                   hours_ago=4)  # fmt: skip
    feeds.append((room.add(Feed("/local.xml", "Dayton Local", [robbery])), "Dayton Local"))
    async with WebhookReceiver() as hook:
        cfg = tmp_path / "feedwatch.yaml"
        lines = "\n".join(f'  - {{url: "{u}", name: "{n}"}}' for u, n in feeds)
        cfg.write_text(
            textwrap.dedent(
                f"""
                storage: {{url: {tmp_path / "fw.db"}}}
                fetch: {{allow_private_networks: true}}
                channels: {{desk: {{type: webhook, url: "{hook.url}"}}}}
                watchlists: [{{name: dayton, places: [Dayton], channels: [desk]}}]
                """
            )
            + "feeds:\n"
            + lines
            + "\n"
        )
        code, _out, err = await feedwatch("run", "--once", "--config", str(cfg))
        assert code == 0, err
        bodies = [r.json() for r in hook.requests]
        matches = [b for b in bodies if b["type"] == "match"]
        follow_ups = [b for b in bodies if b["type"] == "also_reported"]
        fire = [m for m in matches if "warehouse" in m["article"]["title"].lower()
                or "fire" in m["article"]["title"].lower()]  # fmt: skip
        assert len(fire) == 1, [m["article"]["title"] for m in matches]
        assert len(matches) == 2  # the fire, once; the robbery the next day, on its own
        assert len(follow_ups) == 9
        assert {f["alert_id"] for f in follow_ups} == {fire[0]["id"]}
        assert len({f["article"]["feed"] for f in follow_ups} | {fire[0]["article"]["feed"]}) == 10
        assert all(set(f) == {"type", "id", "alert_id", "watchlist", "article"} for f in follow_ups)

        code, out, err = await feedwatch("alerts", "--config", str(cfg))
        assert code == 0, err
        assert out.count("msg_") == 2 and "also reported by 9 (9 outlets)" in out
        code, out, _ = await feedwatch("alerts", "--json", "--config", str(cfg))
        assert '"also_reported"' in out

        # A second pass: nothing new, nothing sent.
        code, _out, err = await feedwatch("run", "--once", "--config", str(cfg))
        assert code == 0, err
        assert len(hook.requests) == 11


async def test_a_material_change_alerts_again_where_the_watchlist_asks(
    tmp_path: Path, server: HostileServer
) -> None:
    room = Newsroom(server)
    first = Item("fire-0", HEADLINES[0], WIRE, hours_ago=5)
    a = room.add(Feed("/a.xml", "Outlet A", [first]))
    update_paras = [WIRE[0], WIRE[1].replace("No one was hurt.", "Two firefighters were hurt."),
                    *WIRE[2:]]  # fmt: skip
    update = Item("fire-update", "Dayton warehouse fire: 2 firefighters hurt", update_paras,
                  hours_ago=2)  # fmt: skip
    async with WebhookReceiver() as hook:
        cfg = tmp_path / "feedwatch.yaml"

        def write(feeds: str) -> None:
            cfg.write_text(
                textwrap.dedent(
                    f"""
                    storage: {{url: {tmp_path / "fw.db"}}}
                    fetch: {{allow_private_networks: true}}
                    channels: {{desk: {{type: webhook, url: "{hook.url}"}}}}
                    watchlists:
                      - {{name: updates, places: [Dayton], realert_on: update, channels: [desk]}}
                      - {{name: once, places: [Dayton], channels: [desk]}}
                    """
                )
                + feeds
            )

        write(f'feeds:\n  - {{url: "{a}", name: Outlet A}}\n')
        code, _out, err = await feedwatch("run", "--once", "--config", str(cfg))
        assert code == 0, err
        assert sorted(r.json()["watchlist"] for r in hook.requests) == ["once", "updates"]
        first_ids = {r.json()["watchlist"]: r.json()["id"] for r in hook.requests}

        b = room.add(Feed("/b.xml", "Outlet B", [update]))
        write(f'feeds:\n  - {{url: "{a}", name: Outlet A}}\n  - {{url: "{b}", name: Outlet B}}\n')
        code, _out, err = await feedwatch("run", "--once", "--config", str(cfg))
        assert code == 0, err
        later = {r.json()["watchlist"]: r.json() for r in hook.requests[2:]}
        assert later["updates"]["type"] == "match"  # alerted again: the title has a new number
        assert later["updates"]["update_of"] == first_ids["updates"]
        assert "2" in later["updates"]["change"]
        assert later["once"]["type"] == "also_reported"  # the other watchlist: a copy
        assert later["once"]["alert_id"] == first_ids["once"]
