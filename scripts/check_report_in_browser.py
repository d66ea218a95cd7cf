"""Open a report.html in a real headless browser and check, on the screenshot, that its plots rendered.

    python scripts/check_report_in_browser.py reports/<run>/report.html [--out shot.png] [--browser chromium]

Chromium from the system's packages (Debian: apt-get install chromium) renders the page to a PNG; the check
counts pixels of matplotlib's first two line colours (#1f77b4, #ff7f0e), which only the embedded plots draw
(the page's own styles use neither). Exit 0 with the counts when the plots are there, 1 when they are not.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLOT_COLOURS = {"C0 blue": (31, 119, 180), "C1 orange": (255, 127, 14)}


def screenshot(page: Path, out: Path, browser: str, height: int = 3000) -> None:
    exe = shutil.which(browser) or browser
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size=1280,{height}", f"--screenshot={out}",
                        page.resolve().as_uri()], check=True, capture_output=True, timeout=120)


def plot_pixels(png: Path, tolerance: int = 12) -> dict[str, int]:
    import matplotlib.image as mpimg
    import numpy as np

    rgb = (mpimg.imread(png)[..., :3] * 255).astype(int)
    return {name: int((np.abs(rgb - np.array(colour)).max(axis=-1) <= tolerance).sum())
            for name, colour in PLOT_COLOURS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="where to keep the screenshot (default: beside the page)")
    parser.add_argument("--browser", default="chromium")
    parser.add_argument("--min-pixels", type=int, default=200)
    args = parser.parse_args(argv)
    out = args.out or args.page.with_name("report-screenshot.png")
    screenshot(args.page, out, args.browser)
    counts = plot_pixels(out)
    ok = counts["C0 blue"] >= args.min_pixels
    print(f"{out}: plot pixels {counts} -> {'the plots rendered' if ok else 'NO PLOTS RENDERED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
