"""Screenshots of every dashboard page for the docs: ``python -m tests.screenshots [DIR]``.

Runs ``feedwatch demo --keep`` into a temporary folder (the bundled sample feeds, served on
127.0.0.1), serves its database with ``feedwatch web``'s own code, and saves a PNG of each page,
taken by headless Chromium (``tests/browser.py``), in DIR (default ``docs/screenshots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from tests.browser import close, console_errors, new_driver

PAGES = [
    ("overview", "/"),
    ("feeds", "/feeds"),
    ("alerts", "/alerts"),
    ("search", '/articles?q="evacuation order" OR wildfire*'),
    ("watchlists", "/watchlists"),
]


def _serve(config: Path, ready: threading.Event, box: dict[str, Any]) -> None:
    from monitor.settings import load_config
    from monitor.web.serve import serve

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = (asyncio.get_running_loop(), stop)

        def listening(port: int) -> None:
            box["port"] = port
            ready.set()

        cfg = load_config(config, env={})
        cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update={"listen": "127.0.0.1:0"})
                                     if cfg.server else None})  # fmt: skip
        await serve(cfg, stop, listening)

    asyncio.run(main())


def _fit(browser: Any, width: int) -> None:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(max(int(height), 600), 2400))


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    from monitor.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="feedwatch-shots-") as tmp:
        with contextlib.redirect_stdout(io.StringIO()):
            asyncio.run(run_demo(keep=Path(tmp)))
        ready = threading.Event()
        box: dict[str, Any] = {}
        server = threading.Thread(target=_serve, args=(Path(tmp) / "feedwatch.yaml", ready, box))
        server.start()
        if not ready.wait(60):
            raise SystemExit("the dashboard did not start")
        base = f"http://127.0.0.1:{box['port']}"
        browser = new_driver(1200, 900)
        try:
            pages = list(PAGES)
            browser.get(base + "/articles?q=evacuation")
            first = browser.find_element("css selector", "#results .hit .title").get_attribute(
                "href"
            )
            pages.insert(4, ("article", first.removeprefix(base)))
            for name, path in pages:
                browser.set_window_size(1200, 900)
                browser.get(base + path)
                _fit(browser, 1200)
                browser.save_screenshot(str(out / f"{name}.png"))
                errors = console_errors(browser)
                if errors:
                    raise SystemExit(f"{name}: console errors: {errors}")
            browser.get(base + "/watchlists/wildfire-evacuations")
            box_ = browser.find_element("css selector", "textarea[name=text]")
            box_.send_keys(
                "Storm closes the coast road\n"
                "Police issued an evacuation order for the harbour district; a fire drill "
                "planned for Friday was postponed."
            )
            box_.submit()
            browser.find_element("css selector", ".verdict")
            _fit(browser, 1200)
            browser.save_screenshot(str(out / "watchlist-try.png"))
            browser.set_window_size(390, 844)
            browser.get(base + "/")
            browser.save_screenshot(str(out / "phone-overview.png"))
        finally:
            close(browser)
            loop, stop = box["stop"]
            loop.call_soon_threadsafe(stop.set)
            server.join(30)
    for png in sorted(out.glob("*.png")):
        print(f"{png} {png.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
