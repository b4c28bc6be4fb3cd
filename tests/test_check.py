"""`feedwatch check` runs everything `run` runs before it polls, and `run` refuses the same
configs with the same messages: every mistake at once, each with its line, exit 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.harness import feedwatch

BROKEN = """
feeds:
  - {url: https://a.example/rss, name: A}
  - {url: https://b.example/rss, name: A}
  - "not a feed"
channels:
  hook: {type: webhook, url: "https://hooks.example.org/x"}
watchlists:
  - name: floods
    keywords: [fl*od, rain]
    places: [Atlantisville, Lisbon, Ruritania City]
    channels: [hook, pager]
  - name: floods
    keywords: [storm]
"""


async def test_every_mistake_at_once_with_its_line_and_run_says_the_same(tmp_path: Path) -> None:
    cfg = tmp_path / "feedwatch.yaml"
    cfg.write_text(f"storage: {{url: {tmp_path / 'fw.db'}}}\n" + textwrap.dedent(BROKEN))
    code, out, err = await feedwatch("check", "--config", str(cfg))
    assert code == 2 and out == ""
    lines = [line.split(": ", 2)[2] for line in err.strip().splitlines()]
    assert lines == [
        "line 5: feeds[1].name: duplicate feed name 'A' (also feeds[0])",
        "line 6: feeds[2]: expected a mapping (key: value pairs)",
        "line 11: watchlists[0].keywords[0]: 'fl*od': '*' is only allowed at the end of a term",
        "line 12: watchlists[0].places[0]: unknown place 'Atlantisville'",
        "line 12: watchlists[0].places[2]: unknown place 'Ruritania City'",
        "line 13: watchlists[0].channels[1]: undefined channel 'pager' (channels: hook)",
        "line 14: watchlists[1].name: duplicate watchlist name 'floods' (also watchlists[0])",
    ]
    assert "Input should" not in err and "Traceback" not in err
    code, _out2, err2 = await feedwatch("run", "--once", "--config", str(cfg))
    assert code == 2 and err2 == err  # `run` refuses with exactly the same messages
    assert not (tmp_path / "fw.db").exists()  # neither created a database

    # With the structure fixed, the watchlists' own errors remain (reported above already, in
    # the same go), each with its line.
    fixed = (
        BROKEN.replace('name: A}\n  - "not a feed"', "name: B}")
        .replace(", pager]", "]")
        .replace("  - name: floods\n    keywords: [storm]\n", "")
    )
    cfg.write_text(f"storage: {{url: {tmp_path / 'fw.db'}}}\n" + textwrap.dedent(fixed))
    code, out, err = await feedwatch("check", "--config", str(cfg))
    assert code == 2, err
    lines = [line.split(": ", 2)[2] for line in err.strip().splitlines()]
    assert lines == [
        "line 10: watchlists[0].keywords[0]: 'fl*od': '*' is only allowed at the end of a term",
        "line 11: watchlists[0].places[0]: unknown place 'Atlantisville'",
        "line 11: watchlists[0].places[2]: unknown place 'Ruritania City'",
    ]
    code, _out, err2 = await feedwatch("run", "--once", "--config", str(cfg))
    assert code == 2 and err2 == err


async def test_an_unusable_storage_location_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("hello, I am a text file\n" * 100)
    cfg = tmp_path / "feedwatch.yaml"
    cfg.write_text(f"storage: {{url: {tmp_path / 'not-a-db'}}}\n")
    code, _out, err = await feedwatch("check", "--config", str(cfg))
    assert code == 2 and "storage.url:" in err and "is not a feedwatch database" in err
