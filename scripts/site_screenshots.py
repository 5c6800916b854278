"""Screenshots of the scoreboard's index as a laptop (1400 x 900) and a phone (390 x 844) first show it.

    python scripts/site_screenshots.py [--site docs/site]

Run after ``labbench site --out docs/site``: it writes ``screenshots/index-1400.png`` and
``screenshots/index-390.png`` inside the site (the README shows the first). Taken with the same
headless, offline Chromium as the browser test (``labbench.site.browser``), so the picture is of
what the test checked. The builder does not list these files in its manifest, so a rebuild keeps them;
retake them whenever the index changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labbench.site.browser import screenshot

REPO = Path(__file__).resolve().parents[1]
VIEWPORTS = {"index-1400.png": (1400, 900), "index-390.png": (390, 844)}  # a laptop, and an iPhone 12-15's CSS viewport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=REPO / "docs" / "site", help="the built site (default: docs/site)")
    args = parser.parse_args(argv)
    index = args.site / "index.html"
    if not index.is_file():
        parser.error(f"{index} is missing: build the site first (labbench site --out {args.site})")
    for name, (width, height) in VIEWPORTS.items():
        out = screenshot(index, args.site / "screenshots" / name, width, height)
        print(f"{out}: {width} x {height}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
