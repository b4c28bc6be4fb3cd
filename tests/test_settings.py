"""Config loading: every rule of the contract's Configuration section, and `feedwatch check`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from monitor.settings import (
    ConfigError,
    EmailChannel,
    WebhookChannel,
    load_config,
    parse_duration,
    parse_size,
    signing_key,
)
from tests.harness import feedwatch

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def write(tmp_path: Path, text: str, name: str = "feedwatch.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return info.value.errors


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        (45, 45),
        ("500ms", 0.5),
        ("10", 10),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["15 minutes", "m", "", "-5s", "1x", True, None, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_sizes() -> None:
    assert parse_size("512KB") == 512 * 1024
    assert parse_size("5MB") == 5 * 1024 * 1024
    assert parse_size(100) == 100
    with pytest.raises(ValueError):
        parse_size("5 parsecs")
    with pytest.raises(ValueError):
        parse_size(0)


def test_full_contract_example_loads(tmp_path: Path) -> None:
    (tmp_path / "subscriptions.opml").write_text(
        '<?xml version="1.0"?><opml version="2.0"><body><outline text="Sci">'
        '<outline text="Sci Daily" xmlUrl="https://sci.example.org/feed"/></outline></body></opml>'
    )
    path = write(
        tmp_path,
        f"""
        storage:
          url: data/feedwatch.db
        fetch:
          timeout: 20s
          max_bytes: 5MB
          concurrency: 64
          per_host: 2
          user_agent: "feedwatch/test"
          allow_private_networks: false
        defaults:
          interval: 15m
          extract: true
          max_age: 48h
        delivery:
          drain_seconds: 30
        feeds_from: [subscriptions.opml]
        feeds:
          - url: https://example.org/rss.xml
            name: Example World
            interval: 5m
            extract: false
            tags: [world]
        channels:
          ops-hook:  {{type: webhook, url: https://hooks.example.org/x, secret: "{SECRET}", headers: {{X-Team: news}}}}
          newsroom:  {{type: slack, webhook_url: "${{SLACK_WEBHOOK_URL}}"}}
          editors:   {{type: email, host: smtp.example.org, port: 587, security: starttls,
                      username: alerts, password: "${{SMTP_PASSWORD}}", from: alerts@example.org, to: [desk@example.org],
                      ca_file: null}}
          terminal:  {{type: console}}
          phones:    {{type: apprise, url: "ntfy://ntfy.example.org/newsdesk", digest: 1h}}
        watchlists:
          - name: wildfire-evacuations
            keywords: [wildfire*, "evacuation order", FEMA]
            places: [Lisbon, {{name: Porto, country: PT, within_km: 50}}]
            require: []
            exclude: [football, drill*]
            feeds: [Example World]
            channels: [ops-hook, newsroom]
        """,
    )
    cfg = load_config(
        path,
        env={"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x", "SMTP_PASSWORD": "pw"},
    )
    assert (
        cfg.storage.sqlite_path == tmp_path / "data" / "feedwatch.db"
    )  # relative to the config file
    assert cfg.feeds[0].interval == 300 and cfg.feeds[0].extract is False
    assert [f.url for f in cfg.feeds] == [
        "https://example.org/rss.xml",
        "https://sci.example.org/feed",
    ]
    assert cfg.feeds[1].name == "Sci Daily" and cfg.feeds[1].tags == ["Sci"]
    hook = cfg.channels["ops-hook"]
    assert isinstance(hook, WebhookChannel) and hook.secret is not None
    assert signing_key(hook.secret.get_secret_value()) == __import__("base64").b64decode(SECRET[6:])
    email = cfg.channels["editors"]
    assert isinstance(email, EmailChannel) and email.from_ == "alerts@example.org"
    assert email.password is not None and email.password.get_secret_value() == "pw"
    assert cfg.channels["phones"].digest is not None and cfg.channels["phones"].digest.every == 3600
    wl = cfg.watchlists[0]
    assert (
        wl.places[0].name == "Lisbon"
        and wl.places[1].within_km == 50
        and wl.places[1].country == "PT"
    )
    assert cfg.defaults.max_age == 48 * 3600


def test_unknown_key_names_path_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        channels:
          a: {type: console}
        watchlists:
          - name: one
            keywords: [x]
            channels: [a]
          - name: two
            keywords: [y]
            chanels: [a]
        """,
    )
    errs = errors_of(path)
    assert errs == ["line 10: watchlists[1].chanels: unknown key"]


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "feeds:\n  - url: https://a.example/x\n    name: [unclosed\nchannels: {}\n"
    )
    errs = errors_of(path)
    assert len(errs) == 1 and errs[0].startswith("line ") and "YAML syntax error" in errs[0]
    line = int(errs[0].split()[1].rstrip(","))
    assert line in (3, 4)


def test_unset_variable_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        channels:
          newsroom: {type: slack, webhook_url: "${SLACK_WEBHOOK_URL}"}
        """,
    )
    errs = errors_of(path, env={})
    assert errs == [
        "line 3: channels.newsroom.webhook_url: environment variable SLACK_WEBHOOK_URL is not set"
    ]
    cfg = load_config(path, env={"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/C"})
    assert cfg.channels["newsroom"].webhook_url.get_secret_value().endswith("/T/B/C")


def test_default_after_colon_dash(tmp_path: Path) -> None:
    path = write(tmp_path, 'storage: {url: "${FW_DB:-other.db}"}\n')
    assert load_config(path, env={}).storage.sqlite_path == tmp_path / "other.db"


def test_cross_reference_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        feeds:
          - {url: https://a.example/rss, name: A}
          - {url: https://b.example/rss, name: A}
          - {url: https://a.example/rss}
        channels:
          hook: {type: console}
        watchlists:
          - {name: w, keywords: [x], channels: [hook, nope], feeds: [A, Missing, "tag:none"]}
          - {name: w, keywords: [y]}
        """,
    )
    errs = errors_of(path)
    assert errs == [
        "line 4: feeds[1].name: duplicate feed name 'A' (also feeds[0])",
        "line 5: feeds[2].url: duplicate feed URL (also feeds[0])",
        "line 9: watchlists[0].channels[1]: undefined channel 'nope' (channels: hook)",
        "line 9: watchlists[0].feeds[1]: undefined feed 'Missing'",
        "line 9: watchlists[0].feeds[2]: no feed has tag 'none'",
        "line 10: watchlists[1].name: duplicate watchlist name 'w' (also watchlists[0])",
    ]


def test_wrong_types_and_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        fetch:
          timeout: soon
          max_bytes: lots
          concurrency: many
        feeds:
          - url: ftp://example.org/feed
        channels:
          x: {type: pager}
          y: {type: webhook, url: https://h.example/x, secret: "whsec_not base64!"}
          z: {type: email, host: smtp.example.org, from: a@example.org, to: ["not-an-address"]}
        """,
    )
    errs = "\n".join(errors_of(path))
    assert "fetch.timeout: 'soon' is not a duration" in errs
    assert "fetch.max_bytes: 'lots' is not a size" in errs
    assert "fetch.concurrency:" in errs
    assert "feeds[0].url:" in errs and "not an http(s) URL" in errs
    assert "channels.x: type must be one of webhook, slack, email, console, apprise" in errs
    assert "channels.y.secret: secret: the part after 'whsec_' must be base64" in errs
    assert "channels.z.to: " in errs and "not an email address" in errs
    assert "whsec_not" not in errs  # secrets are never echoed


def test_config_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    assert errors_of(write(tmp_path, "- just\n- a list\n"))[0].startswith(
        "the config must be a mapping"
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "config file not found" in str(info.value)


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, "feeds: [{url: 'https://a.example/rss', name: FromEnv}]\n", name="env.yaml"
    )
    monkeypatch.setenv("FEEDWATCH_CONFIG", str(path))
    assert load_config(None).feeds[0].name == "FromEnv"


def test_digest_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        channels:
          a: {type: console, digest: 1h}
          b: {type: console, digest: "daily at 08:00 Europe/Lisbon"}
        """,
    )
    cfg = load_config(path, env={})
    assert cfg.channels["a"].digest.every == 3600
    assert cfg.channels["b"].digest.at == (8, 0) and cfg.channels["b"].digest.tz == "Europe/Lisbon"
    bad = write(
        tmp_path,
        "channels:\n  a: {type: console, digest: 'daily at 08:00 Mars/Olympus'}\n",
        name="bad.yaml",
    )
    assert "unknown time zone" in errors_of(bad)[0]


async def _cli(*args: str, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    code, out, err = await feedwatch(*args, env=env)
    return CompletedProcess(list(args), code, out, err)


async def test_check_command_masks_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        feeds: [{{url: "https://example.org/rss.xml", name: Example}}]
        channels:
          hook: {{type: webhook, url: "https://hooks.example.org/x?token=abc123secret", secret: "{SECRET}"}}
          slack: {{type: slack, webhook_url: "${{SLACK_URL}}"}}
          mail: {{type: email, host: smtp.example.org, username: u, password: "hunter2-very-secret",
                 from: a@example.org, to: [b@example.org]}}
        watchlists:
          - {{name: w, keywords: [fire], channels: [hook, slack, mail]}}
        """,
    )
    slack = "https://hooks.slack.com/services/T0000/B0000/SLACKTOKENXYZ"
    res = await _cli("check", "--config", str(path), env={"SLACK_URL": slack})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "config OK" in out and "Example" in out and "w: 1 keyword(s)" in out
    for secret in (SECRET, "hunter2-very-secret", "SLACKTOKENXYZ", "abc123secret", slack):
        assert secret not in out


async def test_check_command_invalid_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "watchlists:\n  - name: w\n    chanels: [a]\n")
    res = await _cli("check", "--config", str(path))
    assert res.returncode == 2
    assert "watchlists[0].chanels: unknown key" in res.stderr
    assert "Traceback" not in res.stderr


def test_bundled_configs_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    load_config(root / "config" / "feedwatch.yaml", env={})
    load_config(
        root / "config" / "feedwatch.example.yaml",
        env={"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/C", "SMTP_PASSWORD": "x"},
    )


def test_storage_url_forms(tmp_path: Path) -> None:
    ok = write(tmp_path, "storage: {url: 'sqlite:///x.db'}\n")
    assert load_config(ok, env={}).storage.sqlite_path == tmp_path / "x.db"
    pg = write(tmp_path, "storage: {url: 'postgresql://u:secretpw@db/feeds'}\n", name="pg.yaml")
    cfg = load_config(pg, env={})
    assert cfg.storage.backend == "postgresql" and cfg.storage.url.endswith("@db/feeds")
    bad = write(tmp_path, "storage: {url: 'mysql://u:pw-9x@db/x'}\n", name="my.yaml")
    (err,) = errors_of(bad)
    assert err.startswith("line 1: storage.url: mysql:// is not a storage this version knows")
    assert "pw-9x" not in err


async def test_global_options_work_before_or_after_the_command(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds: [{url: 'https://a.example/rss', name: Placed}]\n")
    for args in (
        ("--config", str(path), "check"),
        ("check", "--config", str(path)),
        ("-c", str(path), "--debug", "check"),
    ):
        res = await _cli(*args)
        assert res.returncode == 0 and "Placed" in res.stdout, (args, res.stderr)
