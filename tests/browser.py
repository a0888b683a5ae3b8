"""Headless Chromium (Debian's `chromium`) as the tests' browser: load a page, let its scripts run,
return the console messages and a screenshot."""
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`make test` installs it)")


def render(url: str, screenshot, wait_ms: int = 8000) -> list[str]:
    """Console errors and uncaught exceptions of the page while it loads (the software-WebGL
    performance notices of a headless browser are not the page's and are left out)."""
    result = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", "--enable-unsafe-swiftshader", f"--virtual-time-budget={wait_ms}", "--window-size=1280,1600",
                             f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=120)
    return [line for line in result.stderr.splitlines()
            if ":CONSOLE" in line and ("Uncaught" in line or "rror" in line)]


def dom(url: str, wait_ms: int = 8000) -> str:
    """The page's DOM once its scripts have run (what a user would see, as HTML)."""
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                           f"--virtual-time-budget={wait_ms}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120).stdout


def is_blank(screenshot) -> bool:
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    return pixels.std() < 5
