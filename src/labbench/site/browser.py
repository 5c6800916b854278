"""Debian's headless Chromium, driven by Selenium with the network off: how the site is looked at.

The browser test (tests/test_site.py) and the screenshots committed beside the site
(scripts/site_screenshots.py) open the pages the same way, so a screenshot shows what the test
checked. The system's driver is used by its path: Selenium Manager must not download a driver or
a browser, and a page must not reach anything outside the site.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

# Every page of the site must open from disk; these flags make any other request fail at once.
OFFLINE_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--force-device-scale-factor=1")


class NoBrowser(RuntimeError):
    """Chromium, its driver or Selenium is missing; the message says what to install."""


def chromium(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium window of ``width`` x ``height`` CSS pixels (the viewport, not the outer window), offline."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)
    if not binary or not driver:
        raise NoBrowser("the browser needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; "
                        "scripts/setup.sh --browser installs them when run as root); not found on this machine")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise NoBrowser("the browser needs selenium (pip install -e '.[dev]')") from err
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (*OFFLINE_ARGS, f"--window-size={width},{height}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        browser.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        resize(browser, width, height)
    except Exception:
        browser.quit()
        raise
    return browser


def resize(browser: Any, width: int, height: int) -> None:
    """Make the viewport ``width`` x ``height``: the window's size includes its frame, so it is corrected by the difference.

    A phone's 390 px is the width the page lays out in; a window of 390 whose viewport is narrower
    (or wider) would measure the wrong layout."""
    browser.set_window_size(width, height)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [width, height]:
        browser.set_window_size(2 * width - inner[0], 2 * height - inner[1])


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    """A PNG of the top of ``page`` (what a reader sees first) in a ``width`` x ``height`` viewport."""
    browser = chromium(width, height)
    try:
        browser.get(page.resolve().as_uri())
        out.parent.mkdir(parents=True, exist_ok=True)
        if not browser.save_screenshot(str(out)):
            raise RuntimeError(f"{out}: the browser wrote no screenshot")
    finally:
        browser.quit()
    return out
