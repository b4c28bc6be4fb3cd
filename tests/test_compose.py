"""docker-compose.postgres.yml: PostgreSQL and two daemons on one database.

No Docker engine runs here, so the file's structure is what is checked: the services, their
dependencies and healthchecks, the password from the environment, and that the config the
daemons read is valid and points at the compose PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.settings import load_config
from storage import mask_url

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.postgres.yml"
DAEMONS = ("feedwatch-1", "feedwatch-2")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the x-feedwatch anchor and merges
    assert isinstance(data, dict)
    return data


def _mounted_config(service: dict[str, Any]) -> Path:
    """The host path of the config file the service's command names (through its mount)."""
    command = service["command"]
    container_path = command[command.index("--config") + 1]
    for volume in service["volumes"]:
        host, target = volume.split(":")[:2]
        if container_path.startswith(target.rstrip("/") + "/"):
            return ROOT / host / container_path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{container_path} is on no mounted volume")


def test_postgres_service_is_healthchecked_and_takes_the_password_from_the_environment() -> None:
    pg = _compose()["services"]["postgres"]
    assert pg["image"].startswith("postgres:")
    assert pg["environment"]["POSTGRES_PASSWORD"].startswith("${PGPASSWORD:?")
    assert "pg_isready" in pg["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "postgres-data" in _compose()["volumes"]


def test_two_daemons_share_one_config_and_wait_for_a_healthy_database() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", *DAEMONS}
    commands = {tuple(services[name]["command"]) for name in DAEMONS}
    assert len(commands) == 1  # the same config for both
    for name in DAEMONS:
        svc = services[name]
        assert svc["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert svc["environment"]["PGPASSWORD"].startswith("${PGPASSWORD:?")
        assert svc["command"][0] == "run"
        assert "/healthz" in " ".join(svc["healthcheck"]["test"])
        assert svc["stop_grace_period"] == "15s"  # SIGTERM ends a daemon within 10 s
        assert all(v.endswith(":ro") for v in svc["volumes"])  # config mounted read-only


def test_the_daemons_config_is_valid_and_points_at_the_compose_postgres() -> None:
    service = _compose()["services"]["feedwatch-1"]
    path = _mounted_config(service)
    assert path.is_file(), path
    assert "${PGPASSWORD}" in path.read_text()  # the password is not in the file
    cfg = load_config(path, env={"PGPASSWORD": "s3cret-pw"})
    url = cfg.storage.url
    assert url.startswith("postgresql://feedwatch:")
    assert mask_url(url) == "postgresql://feedwatch:***@postgres:5432/feedwatch"
    # The healthcheck asks the daemon's own server inside the container.
    assert cfg.server is not None and cfg.server.listen == "127.0.0.1:9308"
    assert "127.0.0.1:9308/healthz" in " ".join(service["healthcheck"]["test"])
    # The database name and user match what the postgres service creates.
    env = _compose()["services"]["postgres"]["environment"]
    assert url.endswith(f"@postgres:5432/{env['POSTGRES_DB']}")
    assert url.startswith(f"postgresql://{env['POSTGRES_USER']}:")
