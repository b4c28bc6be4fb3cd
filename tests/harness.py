"""Running `feedwatch` in-process, as a user would from the shell, but without a new Python.

A subprocess costs a second of start-up per call (interpreter, imports, the gazetteer); the
in-process run shares them, so a test can run dozens of commands. Standard output, standard
error (log lines included) and the exit code are captured exactly as the shell would see them.
Subprocesses remain for what only they can show: signals, SIGKILL, the installed script.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from contextlib import redirect_stderr, redirect_stdout

from monitor.cli import run_cli


async def feedwatch(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``feedwatch ARGS...`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    level = logging.getLogger().level
    if env:
        os.environ.update(env)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = await run_cli(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        root = logging.getLogger()
        root.handlers[:] = [h for h in root.handlers if h.get_name() != "feedwatch"]
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


class DaemonProcess:
    """`feedwatch ARGS...` in a subprocess, for what needs a real process: signals and kills.

    Its log lines are read as they come, so a test waits for an event ("config reloaded")
    instead of sleeping. Every wait is bounded (a hang fails the test, it does not block it).
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self.stdout = b""

    async def __aenter__(self) -> DaemonProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_log(self, text: str, count: int = 1, timeout: float = 60) -> list[str]:
        """Wait until ``count`` log lines contain ``text``; return them."""

        def found() -> list[str]:
            return [line for line in self.lines if text in line]

        async with asyncio.timeout(timeout):
            async with self._changed:
                while len(found()) < count:
                    if self._reader is not None and self._reader.done():
                        raise AssertionError(f"process ended before logging {text!r}:\n{self.log}")
                    await self._changed.wait()
        return found()

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 60) -> int:
        """Wait for the process to end (a bound against hangs, not a timing assertion)."""
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            self.stdout = await self.proc.stdout.read()
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code
