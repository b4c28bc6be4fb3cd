"""Configs that try to hurt: alias bombs, deep nesting, duplicate keys, non-finite numbers,
secrets placed where an error would echo them. Each gets one clear error and no crash."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.settings import ConfigError, load_config, load_config_text, parse_duration

PASSWORD = "hunter2-very-secret"


def errors_of(text: str, env: dict[str, str] | None = None, base: Path = Path("/tmp")) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), base_dir=base, env=env or {})
    return info.value.errors


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join(f"*a{i - 1}" for _ in range(width))
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append(f"feeds: *a{levels}")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_with_one_clear_error() -> None:
    errs = errors_of(billion_laughs())
    assert len(errs) == 1
    assert "expands to more than" in errs[0] and "aliases" in errs[0]


def test_modest_aliases_still_work() -> None:
    text = """
    channels:
      a: {type: console}
    watchlists:
      - {name: one, keywords: [flood], channels: &common [a]}
      - {name: two, keywords: [fire], channels: *common}
    """
    cfg = load_config_text(textwrap.dedent(text), base_dir=Path("/tmp"), env={})
    assert [w.channels for w in cfg.watchlists] == [["a"], ["a"]]


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    text = "feeds: " + "[" * 1000 + "]" * 1000 + "\n"
    errs = errors_of(text)
    assert errs == ["line 1: nested more than 64 levels deep"]


def test_recursive_alias_is_refused() -> None:
    errs = errors_of("feeds: &x [*x]\n")
    assert len(errs) == 1
    assert "alias" in errs[0] or "expands" in errs[0]


def test_duplicate_keys_name_both_lines() -> None:
    errs = errors_of(
        """
        fetch:
          timeout: 10s
          concurrency: 8
          timeout: 20s
        """
    )
    assert errs == ["line 5: fetch.timeout: duplicate key (first on line 3); remove one of them"]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN"])
def test_non_finite_numbers_are_refused_everywhere(value: str) -> None:
    errs = errors_of(
        f"""
        delivery:
          retry_for: {value}
        """
    )
    assert len(errs) == 1
    assert errs[0].startswith("line 3: delivery.retry_for: ")
    assert "not a usable number" in errs[0]


@pytest.mark.parametrize("text", ["inf", "nan", "1e400", "-5"])
def test_durations_are_finite_and_bounded(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(float(text) if text != "-5" else -5)
    with pytest.raises(ValueError):
        parse_duration("99999999999d")


def test_misplaced_secrets_are_never_echoed() -> None:
    env = {"PW": PASSWORD, "SHORT": "abc"}
    errs = errors_of(
        """
        fetch:
          timeout: ${PW}
          max_bytes: ${SHORT}
        channels:
          m: {type: email, host: smtp.example.org, from: a@example.org, to: ["${PW}"]}
        feeds:
          - url: ${PW}
        """,
        env=env,
    )
    text = "\n".join(errs)
    assert "fetch.timeout" in text and "channels.m.to" in text and "feeds[0].url" in text
    assert "max_bytes" in text
    assert PASSWORD not in text
    assert "abc" not in text
    assert "***" in text


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    errs = errors_of(
        """
        fetch:
          timeout: soon
        feeds:
          - {url: https://a.example/rss, name: A}
          - {url: https://b.example/rss, name: A}
          - "just a string"
        channels:
          x: {type: pager}
        watchlists:
          - {name: w, keywords: [x], channels: [nope]}
        """
    )
    assert errs == [
        "line 3: fetch.timeout: 'soon' is not a duration (use 90s, 15m, 2h, 1d)",
        "line 6: feeds[1].name: duplicate feed name 'A' (also feeds[0])",
        "line 7: feeds[2]: expected a mapping (key: value pairs)",
        "line 9: channels.x: type must be one of webhook, slack, email, console, apprise",
        "line 11: watchlists[0].channels[0]: undefined channel 'nope' (channels: x)",
    ]
    assert not any("Input should" in e for e in errs)


def test_default_database_sits_beside_the_config_file(tmp_path: Path) -> None:
    cfg_dir = tmp_path / "etc"
    cfg_dir.mkdir()
    (cfg_dir / "feedwatch.yaml").write_text("feeds: []\n")
    cfg = load_config(cfg_dir / "feedwatch.yaml", env={})
    assert Path(cfg.storage.url) == cfg_dir / "data" / "feedwatch.db"
    cfg = load_config(cfg_dir / "feedwatch.yaml", env={"FEEDWATCH_DATA_DIR": "/var/lib/fw"})
    assert cfg.storage.url == "/var/lib/fw/feedwatch.db"
    assert "/var/lib/fw" not in cfg.env_values  # the data directory is not a ${VAR} secret
