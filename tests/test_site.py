"""``labbench site``: one static page per claim and an index of every verdict, opened in a real browser.

The builder is checked on the committed results (every hypothesis a row, every claim of the
catalog present, every link to a file of the site, the same bytes on a rebuild) and on a store;
then Debian's Chromium, driven headless with the network off, opens the built index from disk.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import REPO

from labbench.ablation import spec as specs
from labbench.cli import main
from labbench.site import MANIFEST, SiteError, build
from labbench.site.figures import forest_svg
from labbench.site.gather import gate_status, gather, standardized

RESULTS = REPO / "docs" / "results"


def hypotheses_in(results: Path) -> int:
    """What the index must show: the hypotheses of every verdict.json (a report, not a map cell)."""
    return sum(len(json.loads(p.read_text())["hypotheses"]) for p in results.glob("*/*/verdict.json"))


class Links(HTMLParser):
    """Every src and href of a page, and the rows of the index by class."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()
        self.rows: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [a[k] for k in ("src", "href") if a.get(k)]
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "tr":
            self.rows.append(a)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text())
    return links


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    build(RESULTS, out)
    return out


def test_the_index_has_one_row_per_hypothesis_of_the_committed_results(site):
    rows = [r for r in parse(site / "index.html").rows if r.get("class") == "hyp"]
    assert len(rows) == hypotheses_in(RESULTS) > 0
    assert {r["data-verdict"] for r in rows} <= {"supported", "contradicted", "inconclusive", "undertrained", "smaller than claimed",
                                                 "out of regime", "exploratory"}  # every word a verdict can be (roles, issue 26)
    assert {r["data-section"] for r in rows} <= {"A", "B", "C", "D", "other"}


def test_every_claim_of_the_catalog_has_a_row_and_a_page_even_without_results(site):
    index = parse(site / "index.html")
    reported = {p.parent.parent.name for p in RESULTS.glob("*/*/verdict.json")}
    for name in specs.available():
        assert f"claim-{name}" in index.ids, name
        assert (site / "claims" / f"{name}.html").is_file(), name
    waiting = [r for r in index.rows if r.get("class") == "status"]
    assert len(waiting) == len(set(specs.available()) - reported)
    text = (site / "index.html").read_text()
    for name in set(specs.available()) - reported:
        assert ("not run yet" in text) or ("no budget yet" in text), name


def test_every_link_on_every_page_points_to_a_file_of_the_site(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= len(specs.available()) + 1  # the index and one page per claim
    for page in pages:
        links = parse(page)
        for url in links.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{page.name}: {url} leaves the site"
            if not parts.path:  # #fragment on the same page
                assert parts.fragment in links.ids, f"{page.name}: {url}"
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.relative_to(site)}: {url} -> {target} is missing"
            assert target.is_relative_to(site.resolve()), f"{page.name}: {url} points outside the site"
    assert (site / "forest.svg").is_file() and (site / "claims" / "bn-vs-gn" / "quick-map-width" / "heatmap_0.png").is_file()


def test_a_claim_page_shows_its_report_maps_command_and_wandb_group(site):
    page = (site / "claims" / "bn-vs-gn.html").read_text()
    for needed in ("labbench reproduce bn-vs-gn --profile quick", "labbench map bn-vs-gn --profile quick --axis model.width=32,128",
                   "group <code>bn-vs-gn</code>", "Competence gates", "Provenance", "curves.png", "metrics.png", "heatmap_0.png",
                   "labbench pilot bn-vs-gn"):
        assert needed in page, needed


def test_building_twice_gives_the_same_bytes_and_a_rebuild_writes_nothing(site, tmp_path):
    again = tmp_path / "again"
    build(RESULTS, again)
    files = sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    different = [f for f in files if (site / f).read_bytes() != (again / f).read_bytes()]
    assert not different
    assert build(RESULTS, again).written == 0


def test_the_forest_plot_is_standardized_and_deterministic():
    h = {"mean_diff": 0.5, "sd_diff": 0.25, "ci_low": 0.25, "ci_high": 0.75}
    assert standardized(h) == (2.0, 1.0, 3.0)
    assert standardized({**h, "sd_diff": 0.0}) is None  # every seed the same: nothing to scale by
    assert standardized({**h, "ci_low": math.nan}) is None
    claims = gather(RESULTS)["claims"]
    svg = forest_svg(claims)
    assert svg == forest_svg(claims) and "<dc:date>" not in svg


def store_from_committed(root: Path, name: str = "bn-vs-gn") -> Path:
    """A store laid out as ``reproduce``, ``map`` and ``pilot`` leave it (outputs/ablations/NAME/PROFILE/,
    maps/SLUG/, pilot/), filled with the committed files of one claim: no training needed."""
    store = root / "ablations"
    shutil.copytree(RESULTS / name / "quick", store / name / "quick")
    shutil.copytree(RESULTS / name / "quick-map-width", store / name / "quick" / "maps" / "model.width=32-128")
    shutil.copytree(RESULTS / name / "pilot", store / name / "quick" / "pilot")
    (store / name / "quick" / "runs").mkdir()  # the runs themselves are not read
    return store


def test_gate_status_says_when_a_hypothesis_takes_no_gate_and_whose_miss_it_waived():
    verdict = {"arms": {"a": {"gates": [{"passed": True}]}, "b": {"gates": [{"passed": False}]}}}
    assert gate_status({"undertrained": [{"arm": "b"}]}, verdict) == "missed: b"
    assert gate_status({"undertrained": [], "gate_free": "init", "gates_waived": [{"arm": "b"}]}, verdict) == \
        "not gated (at initialization); missed by b"
    assert gate_status({"undertrained": [], "gate_free": "rate", "gates_waived": []}, verdict) == "not gated (a rate)"
    assert gate_status({"undertrained": []}, verdict) == "passed"  # reports from before gate_free existed


def test_a_store_is_a_source_too(tmp_path):
    store = store_from_committed(tmp_path)
    out = tmp_path / "site"
    built = build(store, out)
    assert built.hypotheses == hypotheses_in(store) == len(json.loads((RESULTS / "bn-vs-gn/quick/verdict.json").read_text())["hypotheses"])
    rows = [r for r in parse(out / "index.html").rows if r.get("class") == "hyp"]
    assert len(rows) == built.hypotheses
    page = (out / "claims" / "bn-vs-gn.html").read_text()
    assert "heatmap_4.png" in page and "labbench pilot bn-vs-gn" in page
    assert (out / "claims" / "bn-vs-gn" / "quick" / "maps" / "model.width=32-128" / "heatmap_4.png").is_file()


def test_the_cli_builds_the_site(tmp_path, capsys):
    store = store_from_committed(tmp_path)
    assert main(["site", "--source", str(store), "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert f"{hypotheses_in(store)} hypotheses" in out and (tmp_path / "site" / "index.html").as_uri() in out
    assert (tmp_path / "site" / "index.html").is_file()


def test_a_rebuild_removes_what_is_gone_and_nothing_else(tmp_path):
    out = tmp_path / "site"
    build(RESULTS, out)
    (out / "screenshot.png").write_bytes(b"kept: not the builder's")
    old = out / "claims" / "xavier-vs-kaiming" / "quick" / "curves.png"
    assert old.is_file()
    build(store_from_committed(tmp_path), out)  # a source with one claim's results
    assert not old.exists() and not old.parent.exists()
    assert (out / "screenshot.png").read_bytes() == b"kept: not the builder's"
    assert (out / "claims" / "xavier-vs-kaiming.html").is_file()  # still in the catalog, now without results


def test_a_folder_that_is_no_site_is_refused_and_a_manifest_cannot_reach_outside(tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(SiteError, match="not empty"):
        build(store_from_committed(tmp_path), occupied)
    assert sorted(p.name for p in occupied.iterdir()) == ["notes.txt"]
    assert main(["site", "--source", str(tmp_path / "ablations"), "--out", str(occupied)]) == 2

    empty = tmp_path / "empty"
    empty.mkdir()
    build(tmp_path / "ablations", empty)  # an empty folder is fine

    victim = tmp_path / "victim.txt"
    victim.write_text("outside the site")
    (empty / MANIFEST).write_text(json.dumps({"files": ["../victim.txt", str(victim), "index.html"]}))
    build(tmp_path / "ablations", empty)
    assert victim.read_text() == "outside the site"


# --- in a real browser -------------------------------------------------------------------------

def browser_or_skip():
    """Debian's Chromium and its driver, or a skip that names what to install (never a silent pass)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)
    if not chromium or not driver:
        pytest.skip("the browser test needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; "
                    "scripts/setup.sh --browser installs them when run as root); not found on this machine")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("the browser test needs selenium (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    # The system driver by its path: Selenium Manager must not download a driver or a browser.
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_the_site_in_a_real_browser_with_the_network_off(site, tmp_path):
    driver = browser_or_skip()
    try:
        driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        pages = [site / "index.html", *sorted((site / "claims").glob("*.html"))]
        for page in pages:
            driver.get(page.as_uri())
            driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
            assert driver.execute_script("return document.readyState") == "complete"
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth])")
            broken = [src for src, complete, width in images if not (complete and width > 0)]
            assert not broken, f"{page.name}: images that did not load: {broken}"
            hrefs = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
            for href in hrefs:
                parts = urlsplit(href)
                assert parts.scheme == "file", f"{page.name}: {href} leaves the site"
                assert Path(unquote(parts.path)).is_file(), f"{page.name}: {href} does not resolve"
                if parts.fragment and Path(unquote(parts.path)) == page:
                    assert driver.execute_script("return !!document.getElementById(arguments[0])", parts.fragment), href
            loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            assert all(url.startswith("file://") for url in loaded), f"{page.name}: loaded from elsewhere: {loaded}"

        driver.get((site / "index.html").as_uri())
        rows = driver.find_elements("css selector", "tr.hyp")
        assert len(rows) == hypotheses_in(RESULTS)
        shot = Path(os.environ.get("LABBENCH_SITE_SCREENSHOT") or tmp_path / "screenshot.png")
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        contradicted = [r for r in rows if r.get_attribute("data-verdict") == "contradicted"]
        assert contradicted, "the committed results have a contradicted hypothesis to filter on"
        driver.find_element("css selector", "input[name=verdict][value=contradicted]").click()
        shown = [r for r in rows if r.is_displayed()]
        assert shown and {r.get_attribute("data-verdict") for r in shown} == {"contradicted"}
        assert len(shown) == len(contradicted)
        assert not any(r.is_displayed() for r in driver.find_elements("css selector", "tr.status"))

        driver.find_element("css selector", "input[name=section][value=B]").click()
        shown = [r for r in rows if r.is_displayed()]
        assert shown and {(r.get_attribute("data-verdict"), r.get_attribute("data-section")) for r in shown} == {("contradicted", "B")}
        driver.find_element("css selector", "input[name=verdict][value=all]").click()
        driver.find_element("css selector", "input[name=section][value=all]").click()
        assert sum(r.is_displayed() for r in rows) == len(rows)
    finally:
        driver.quit()


def test_the_index_counts_claims_by_answer_and_a_claim_shows_its_answer(tmp_path):
    store = store_from_committed(tmp_path)
    path = store / "bn-vs-gn" / "quick" / "verdict.json"
    verdict = json.loads(path.read_text())
    verdict["answer"] = {"answer": "holds here", "primary": verdict["hypotheses"][0]["name"], "because": "the primary hypothesis is supported",
                         "setting": "MNIST5k data, MLP model, 225-3600 steps, 8 seeds (quick profile)"}
    path.write_text(json.dumps(verdict))
    out = tmp_path / "site"
    build(store, out)
    index = (out / "index.html").read_text()
    assert 'Claims by answer: <span class="answer">holds here</span> 1.' in index
    assert '>quick: holds here</span>' in index
    build(RESULTS, tmp_path / "committed")  # the committed reports: those with an answer counted by it, the rest named as such
    reports = [json.loads(p.read_text()) for p in RESULTS.glob("*/quick/verdict.json")]
    without = sum(1 for v in reports if not v.get("answer"))
    committed = (tmp_path / "committed" / "index.html").read_text()
    assert f"{without} report(s) without a primary" in committed
    for answer in {v["answer"]["answer"] for v in reports if v.get("answer")}:
        assert f'<span class="answer">{answer}</span>' in committed
