"""Console channel: readable output on stdout, ANSI only on a terminal, no terminal tricks."""

from __future__ import annotations

import io

import pytest

from monitor.deliver.base import make_sender
from monitor.deliver.console import ConsoleSender, format_alerts
from monitor.settings import ConsoleChannel
from tests.receivers import sample_alert


class Tty(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


async def test_prints_every_field_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    sender = make_sender(
        "terminal",
        ConsoleChannel(type="console"),
        None,  # type: ignore[arg-type]
        allow_private_networks=False,
    )
    result = await sender.send([sample_alert()])
    assert result.ok
    out = capsys.readouterr().out
    assert "\x1b" not in out  # captured stdout is not a terminal: no ANSI codes
    lines = out.splitlines()
    assert lines[0] == "● wildfire-evacuations  Wildfire forces evacuation order near Lisbon"
    assert "Example World · 2024-01-03 10:00 UTC" in out
    assert "https://news.example.org/2024/01/03/wildfire?ref=rss" in out
    assert "keyword 'evacuation order'" in out and "place 'Lisbon'" in out
    assert "issued an [evacuation order] for three villages" in out
    assert "east of [Lisbon]" in out


async def test_bold_highlight_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = Tty()
    assert (await ConsoleSender(stream=tty).send([sample_alert()])).ok
    out = tty.getvalue()
    assert "\x1b[1mevacuation order\x1b[0m for three villages" in out
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Tty()
    await ConsoleSender(stream=plain).send([sample_alert()])
    assert "\x1b" not in plain.getvalue()


def test_terminal_escapes_and_newlines_in_articles_are_neutralised() -> None:
    alert = sample_alert(title="\x1b[2J\x1b[31mEvil\r\n● fake-list  Fake alert", feed="F\x07eed")
    out = format_alerts([alert], color=True)
    assert "\x1b[2J" not in out and "\x1b[31m" not in out and "\x07" not in out
    first = out.splitlines()[0]
    assert first.endswith("\x1b[1mEvil ● fake-list Fake alert\x1b[0m")  # sequences dropped whole
    assert sum(1 for line in out.splitlines() if line.startswith("● ")) == 1


def test_digest_groups_by_watchlist() -> None:
    alerts = [
        sample_alert(id="1", watchlist="storms", title="Storm A"),
        sample_alert(id="2", watchlist="fires", title="Fire B"),
        sample_alert(id="3", watchlist="storms", title="Storm C"),
    ]
    out = format_alerts(alerts)
    assert out.startswith("Digest: 3 alerts\n")
    assert out.index("storms (2 alerts)") < out.index("Storm A") < out.index("Storm C")
    assert out.index("Storm C") < out.index("fires (1 alert)") < out.index("Fire B")


async def test_ascii_only_stream_gets_replacements_not_errors() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    assert (await ConsoleSender(stream=stream).send([sample_alert(title="Lisboa — fogo")])).ok
    assert b"Lisboa ? fogo" in raw.getvalue()


async def test_closed_stdout_is_a_retryable_failure() -> None:
    stream = io.StringIO()
    stream.close()
    result = await ConsoleSender(stream=stream).send([sample_alert()])
    assert not result.ok and result.retryable and "console" in (result.error or "")


def test_malformed_payload_still_prints() -> None:
    out = format_alerts([{"id": "x", "article": None, "matches": "nope"}])
    assert "(untitled)" in out and "(no watchlist)" in out
