"""`feedwatch demo` as a new user runs it: offline, exit 0, the expected alerts and non-alerts."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_offline_and_prints_alerts() -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "4 alerts sent, 0 errors" in out
    for title in (
        "Wildfires force evacuation order for three hill villages",
        "Satellite images show wildfire smoke reaching the Arctic",
        "Dock workers end strike after overnight talks",
        "New map of the seabed off the Portuguese coast",
    ):
        assert f"  {title}" in out, title
    assert "place 'Lisbon' → Lisboa" in out  # another spelling of the watched place
    quiet = out.split("Stored without an alert:", 1)[1]
    for title in (
        "Council approves new cycle lanes",
        "evacuation drill",
        "Heatwave raises wildfire risk",
    ):
        assert title in quiet
    # The syndicated copy (the second feed, with tracking parameters) is the same article:
    # whichever feed's copy is read first, one alert.
    assert out.count("● wildfire-evacuations  Wildfires force evacuation order") == 1
    assert "Republished" not in out
    assert "Traceback" not in res.stderr
