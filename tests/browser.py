"""Open a page in headless Chromium: console messages, image loading and a screenshot, via the command line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Loaded into a copy of the page: after the load event, record how many images there are and how many broke.
PROBE = """<script>window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  document.body.setAttribute("data-images", imgs.length);
  document.body.setAttribute("data-broken", imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length);
});</script>"""
CONSOLE = re.compile(r":(?:ERROR|WARNING|INFO):CONSOLE[^\]]*\]\s*(.*)")


def chromium() -> str | None:
    """The Chromium executable: $BENCH_CHROMIUM, else the first candidate on PATH."""
    return os.environ.get("BENCH_CHROMIUM") or next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class Rendered:
    console: list[str]  # console messages (errors, warnings, logs) the page produced
    images: int
    broken_images: int
    screenshot: np.ndarray  # H x W x channels, floats in [0, 1]

    @property
    def ink(self) -> float:
        """Fraction of screenshot pixels that are not near-white."""
        rgb = self.screenshot[..., :3]
        return float((rgb.min(axis=-1) < 0.9).mean())


def _run(exe: str, args: list[str], url: str, timeout: float) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    try:
        return subprocess.run(
            [
                exe,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--enable-logging=stderr",
                "--v=0",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def render(page: Path, exe: str, width: int = 1280, height: int = 2400, timeout: float = 120) -> Rendered:
    """Screenshot ``page`` and collect its console output; count loaded and broken images on a probed copy."""
    import matplotlib.image

    page = page.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        result = _run(exe, [f"--screenshot={shot}", f"--window-size={width},{height}"], page.as_uri(), timeout)
        if not shot.is_file():
            raise RuntimeError(f"chromium made no screenshot (exit {result.returncode}): {result.stderr[-2000:]}")
        console = [m.group(1) for m in CONSOLE.finditer(result.stderr)]
        probed = page.with_name(f".probe-{page.name}")
        probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
        try:
            dom = _run(exe, ["--dump-dom"], probed.as_uri(), timeout).stdout
        finally:
            probed.unlink(missing_ok=True)
        found = re.search(r'data-images="(\d+)"\s+data-broken="(\d+)"', dom)
        if not found:
            raise RuntimeError("the image probe did not run: " + dom[-500:])
        return Rendered(console, int(found.group(1)), int(found.group(2)), matplotlib.image.imread(shot))
