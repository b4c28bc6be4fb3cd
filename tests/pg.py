"""A throwaway PostgreSQL cluster for the tests: a temporary directory, a free port, then gone.

``initdb`` refuses to run as root, so under root the cluster runs as an unprivileged user
(``postgres`` when it exists, else ``nobody``) that owns the temporary directory. It listens on
127.0.0.1 only, with a random superuser password (so the tests exercise password handling and
masking for real), and durability settings off (fsync) since nothing here must survive.

Also runnable by hand: ``python -m tests.pg`` starts one and prints its URL until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "feedwatch"


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: $PG_BINDIR, Debian's versioned dirs, or PATH."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates.extend(reversed(versions))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempCluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="feedwatch-pg-"))
        self.data = self.root / "data"
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self._user = pwd.getpwnam(name)
                    break
            if self._user is None:
                raise RuntimeError("running as root and no unprivileged user to run PostgreSQL")

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            cmd = [
                "setpriv",
                f"--reuid={self._user.pw_uid}",
                f"--regid={self._user.pw_gid}",
                "--clear-groups",
                "--",
                *cmd,
            ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "HOME": str(self.root),
        }
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}"
            )

    def start(self) -> str:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user is not None:
            for path in (self.root, pwfile):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        os.chmod(self.root, 0o700)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        for attempt in range(5):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            try:
                self._run(
                    "pg_ctl", "start", "-D", str(self.data), "-w", "-t", "60",
                    "-l", str(self.root / "log"), "-o", options,
                )  # fmt: skip
                return self.url
            except RuntimeError:
                if attempt == 4:
                    raise
                continue  # the port was taken meanwhile: try another
        raise AssertionError("unreachable")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        try:
            return (self.root / "log").read_text()[-3000:]
        except OSError:
            return ""


def main() -> None:  # pragma: no cover - a developer's tool
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql)")
    cluster = TempCluster(bindir)
    print(cluster.start(), flush=True)
    try:
        signal.pause()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
