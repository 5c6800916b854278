"""``labbench site``: one static page per claim and an index of every verdict, opened in a real browser.

The builder is checked on the committed results (every hypothesis a row, every claim of the
catalog present, every link to a file of the site, the same bytes on a rebuild) and on a store;
then Debian's Chromium, driven headless with the network off, opens the built index from disk.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from conftest import REPO
from markupsafe import escape

from labbench.ablation import spec as specs
from labbench.ablation.board import effect_words
from labbench.ablation.maps import reproduce_command as map_command
from labbench.ablation.maps import slug
from labbench.cli import main
from labbench.site import MANIFEST, SiteError, build, seeds
from labbench.site.browser import NoBrowser, chromium, resize
from labbench.site.figures import forest_svg
from labbench.site.gather import claim_row, gate_status, gather, line_chips, section_of, setup_chips, standardized

RESULTS = REPO / "docs" / "results"


def mapped_claim() -> tuple[str, Path]:
    """The first committed claim (by name) with a report, a pilot and a map: the one claim page that shows all three,
    and the store the store-side tests build from. Picked at run time, so re-registering a claim (its old results
    removed until its successor runs) moves these tests to another claim instead of breaking them; they fail only when
    no claim has all three."""
    for claim in sorted(p for p in RESULTS.iterdir() if p.is_dir()):
        maps = sorted(claim.glob("quick-map*/map.json"))
        if maps and (claim / "quick" / "verdict.json").is_file() and (claim / "pilot").is_dir():
            return claim.name, maps[0].parent
    raise AssertionError("no committed claim has a quick report, a pilot and a map: run `labbench map NAME --profile quick` "
                         "for one, with `--report-dir docs/results/NAME/quick-map`")


MAPPED, MAP_DIR = mapped_claim()
MAP = json.loads((MAP_DIR / "map.json").read_text())


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
        self.urls += [a[k] for k in ("src", "href", "xlink:href") if a.get(k)]  # xlink:href: the inline forest plot's rows
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


def test_an_out_of_regime_setting_shows_what_was_measured_in_its_claim_row_and_page(site):
    """Issue 28, item 3: the answer `out of regime` comes with the measured value, on the site as in the README."""
    from labbench.ablation.board import load_reports, regime_misses
    from labbench.site.render import environment

    md_inline = environment().filters["md_inline"]

    index = (site / "index.html").read_text()
    expected = 0
    for v in load_reports(RESULTS):
        misses = [m for h in v["hypotheses"] if h.get("role") == "primary" for m in regime_misses(v, h)]
        for miss in misses:
            html = f'<span class="because regime-miss">{md_inline(miss)}</span>'
            assert html in claim_row_html(index, v["name"]), (v["name"], miss)
            assert html in (site / "claims" / f"{v['name']}.html").read_text(), (v["name"], miss)
        expected += len(misses)
    assert expected and index.count('class="because regime-miss"') == expected


def test_a_part_of_the_claim_contradicted_shows_in_its_claim_row(site):
    """Where a setting's answer favours the claim while a secondary (another part of it) was contradicted, the row
    names that part under the setting, as the README does (B3 mlp-mnist1d among them)."""
    from markupsafe import escape

    from labbench.ablation.board import load_reports, parts_against

    index = (site / "index.html").read_text()
    expected = 0
    for v in load_reports(RESULTS):
        for names in parts_against(v).values():
            for name in names:
                assert f"Part of the claim contradicted here: {escape(name)}</span>" in claim_row_html(index, v["name"]), (v["name"], name)
                expected += 1
    assert "with residual links the deeper net is the better one" in claim_row_html(index, "residual-degradation")
    assert expected and index.count('class="because part-against"') == expected


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
            if parts.fragment and target.suffix == ".html":  # an anchor on another page is there too
                assert parts.fragment in parse(target).ids, f"{page.relative_to(site)}: {url} has no #{parts.fragment} there"
    forest = [u for u in parse(site / "index.html").urls if "#h-" in u]
    assert len(set(forest)) == hypotheses_in(RESULTS), "each row of the forest plot links to its own hypothesis"
    assert (site / "forest.svg").is_file() and (site / "claims" / MAPPED / MAP_DIR.name / "heatmap_0.png").is_file()


def test_a_claim_page_shows_its_report_maps_command_and_wandb_group(site):
    page = (site / "claims" / f"{MAPPED}.html").read_text()
    for needed in (f"labbench reproduce {MAPPED} --profile quick", map_command(MAP),
                   f"group <code>{MAPPED}</code>", "Competence gates", "Provenance", "curves.png", "metrics.png", "heatmap_0.png",
                   f"labbench pilot {MAPPED}"):
        assert needed in page, needed
    # the verdicts once: the page's own table, not the report's copy of it (its gates and checks stay)
    assert "p (raw / Holm)" not in page and page.count('class="catalog"') == 1 and "Competence gates" in page
    # a table of contents of the page's sections (each anchor resolves: the link test checks same-page fragments)
    toc = page[page.index('<nav class="toc"'):page.index("</nav>", page.index('<nav class="toc"'))]
    assert 'href="#report-quick"' in toc and 'href="#map-1"' in toc
    assert 'href="#pilot-quick' in toc  # one pilot (#pilot-quick), or one per setting (#pilot-quick-SETTING)


def test_a_reports_command_is_pinned_to_the_commit_of_its_results_and_has_a_copy_button(site):
    """The reproduce command starts with `git checkout C`, C the commit that last changed the report's verdict.json
    (the spec, code and results as committed), and a copy button carries the same text."""
    import html
    import subprocess

    page = (site / "claims" / f"{MAPPED}.html").read_text()
    verdict = RESULTS / MAPPED / "quick" / "verdict.json"
    last = subprocess.run(["git", "log", "-1", "--format=%H", "--", verdict.name], cwd=verdict.parent,
                          capture_output=True, text=True, check=True).stdout.strip()[:10]
    if not last:
        pytest.skip("the committed results have no git history here")
    commands = f"git checkout {last}\nlabbench reproduce {MAPPED} --profile quick"
    assert f"<pre><code>{commands}</code></pre>" in page
    assert f'<button type="button" class="copy" data-copy="{html.escape(commands)}"' in page.replace("&#10;", "\n")
    assert "navigator.clipboard.writeText(button.dataset.copy)" in page


def row_html(page: str, anchor: str) -> str:
    """The HTML of one question's row on sources.html."""
    start = page.index(f'<tr id="{anchor}">')
    return page[start:page.index("</tr>", start)]


@pytest.mark.unit
def test_the_sources_page_shows_every_cited_question_and_the_claims_link_to_it(site):
    """sources.html: every entry of seed_questions.yaml (its anchor, original and English) in its seed file's section,
    linked to each claim that cites it; each claim page links every citation of its spec to that row; every page links the page."""
    page = (site / "sources.html").read_text()
    ids = parse(site / "sources.html").ids
    data = seeds.load()
    for number in data["files"]:
        assert f"file-{number}" in ids, number
    for key, q in data["questions"].items():
        anchor = seeds.anchor(key)
        assert anchor in ids, key
        row = row_html(page, anchor)
        assert str(escape(q["original"])) in row and str(escape(q["english"])) in row, key
        assert page.index(f'id="file-{key.split()[0].removeprefix("seeds/")}"') < page.index(f'<tr id="{anchor}">'), key
    cited = 0
    for name in specs.available():
        claim_page = (site / "claims" / f"{name}.html").read_text()
        assert 'href="../sources.html"' in claim_page, name  # the navigation and the footer
        for key in dict.fromkeys(k for s in specs.load(name).sources for k in seeds.keys(s)):
            anchor = seeds.anchor(key)
            assert f'href="../sources.html#{anchor}"' in claim_page, (name, key)
            assert f'href="claims/{name}.html"' in row_html(page, anchor), (name, key)
            cited += 1
    assert cited >= len(data["questions"])  # every entry is cited (a key cited by several claims counts once each)
    index = (site / "index.html").read_text()
    assert 'href="sources.html"' in index and 'href="sources.html#s004-q26"' in index


def test_building_twice_gives_the_same_bytes_and_a_rebuild_writes_nothing(site, tmp_path):
    again = tmp_path / "again"
    build(RESULTS, again)
    files = sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    different = [f for f in files if (site / f).read_bytes() != (again / f).read_bytes()]
    assert not different
    assert build(RESULTS, again).written == 0


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_the_committed_site_is_a_fresh_build_with_its_screenshots(tmp_path, monkeypatch):
    """docs/site is what ``labbench site --out docs/site`` writes from the committed results, byte for byte, and
    holds the index's screenshots at a laptop's and a phone's size (scripts/site_screenshots.py)."""
    committed = REPO / "docs" / "site"
    monkeypatch.chdir(REPO)  # the command's own default source, docs/results, as the pages name it
    site = tmp_path / "fresh"
    build(Path("docs/results"), site)
    built = json.loads((site / MANIFEST).read_text())["files"]
    assert json.loads((committed / MANIFEST).read_text())["files"] == built, "docs/site is out of date: labbench site --out docs/site"
    stale = [f for f in built if (committed / f).read_bytes() != (site / f).read_bytes()]
    assert not stale, f"docs/site differs from a fresh build in {stale[:5]}: labbench site --out docs/site"
    for name, size in (("index-1400.png", (1400, 900)), ("index-390.png", (390, 844))):
        shot = committed / "screenshots" / name
        assert shot.is_file() and png_size(shot) == size, name
        assert f"screenshots/{name}" not in built  # not the builder's: a rebuild keeps it
    extra = sorted(p.relative_to(committed).as_posix() for p in committed.rglob("*") if p.is_file())
    assert set(extra) - set(built) == {MANIFEST, "screenshots/index-1400.png", "screenshots/index-390.png"}


def test_the_forest_plot_is_standardized_and_deterministic():
    h = {"mean_diff": 0.5, "sd_diff": 0.25, "ci_low": 0.25, "ci_high": 0.75}
    assert standardized(h) == (2.0, 1.0, 3.0)
    assert standardized({**h, "sd_diff": 0.0}) is None  # every seed the same: nothing to scale by
    assert standardized({**h, "ci_low": math.nan}) is None
    claims = gather(RESULTS)["claims"]
    svg = forest_svg(claims)
    assert svg == forest_svg(claims) and "<dc:date>" not in svg


def test_the_forest_plot_caps_extreme_effects_draws_margins_and_tells_verdicts_apart_by_shape():
    """Issue 29, item 4: d beyond 30 is cut with its value written; a margin or claimed size is a bar in sd units;
    every verdict has its own marker shape (not colour alone); undecided verdicts are hollow."""
    from labbench.site.figures import MARKERS
    from labbench.site.gather import bar_in_sd

    assert bar_in_sd({"sd_diff": 0.005, "margin": -0.01, "min_effect": None}) == pytest.approx(-2.0)
    assert bar_in_sd({"sd_diff": 0.02, "margin": 0.0, "min_effect": 0.01}) == pytest.approx(0.5)  # the claimed size wins
    assert bar_in_sd({"sd_diff": 0.02, "margin": 0.0, "min_effect": None}) is None  # zero: the axis itself
    shapes = {v: m for v, m in MARKERS.items()}
    assert len({shapes[v] for v in ("supported", "contradicted", "inconclusive", "undertrained", "out of regime")}) == 5
    assert not MARKERS["undertrained"][1] and MARKERS["supported"][1]

    def row(name, d, verdict, bar=None):
        return {"name": name, "d": d, "d_low": d - 1, "d_high": d + 1, "d_bar": bar, "verdict": verdict}

    claims = [{"claim_id": "X1", "name": "planted", "reports": [{"profile": "quick", "hypotheses": [
        row("seeds that barely vary", 343.0, "supported"), row("within a margin", 0.4, "inconclusive", bar=-2.0),
        row("gate missed", 5.0, "undertrained")]}]}]
    svg = forest_svg(claims)
    assert "d = 343 (cut at 30)" in svg and "margin / claimed size" in svg
    assert "planted" in svg and "seeds that barely vary" in svg


def test_each_forest_row_links_to_its_hypothesis_and_carries_what_the_filters_select_on():
    """Issue 29: a row of the forest plot links to its hypothesis on the claim's page (same tab) and its drawn parts
    carry the claim, section and verdict the index's filters fade it by; the claim's heading links to the page."""
    from labbench.site.figures import inline

    def row(name, d, verdict, index):
        return {"name": name, "d": d, "d_low": d - 1, "d_high": d + 1, "d_bar": None, "verdict": verdict, "index": index}

    claims = [{"claim_id": "X1", "name": "planted", "section": "B", "page": "claims/planted.html", "reports": [{"profile": "quick", "hypotheses": [
        row("first", 2.0, "supported", 0), {**row("flat", 0.0, "inconclusive", 1), "d": None}]}]}]
    svg = forest_svg(claims)
    assert 'target="_blank"' not in svg
    for gid in ("fh-0-line", "fh-0-mark", "fh-0-label"):
        start = svg.index(f'<g id="{gid}"')
        head = svg[start:svg.index(">", start)]
        assert 'data-claim="planted"' in head and 'data-section="B"' in head and 'data-verdict="supported"' in head, head
        assert '<a xlink:href="claims/planted.html#h-quick-0"' in svg[start:start + 400], gid
    start = svg.index('<g id="fh-1-note"')  # a row with no spread is a note, linked and tagged the same way
    assert 'data-verdict="inconclusive"' in svg[start:start + 200] and "#h-quick-1" in svg[start:start + 400]
    start = svg.index('<g id="fc-0-label"')
    assert 'data-verdict' not in svg[start:svg.index(">", start)] and 'xlink:href="claims/planted.html"' in svg[start:start + 300]
    element = inline(svg)
    assert element.startswith("<svg") and "<?xml" not in element and "DOCTYPE" not in element


def store_from_committed(root: Path, name: str = MAPPED) -> Path:
    """A store laid out as ``reproduce``, ``map`` and ``pilot`` leave it (outputs/ablations/NAME/PROFILE/,
    maps/SLUG/, pilot/), filled with the committed files of one claim that has a report, a map and a pilot
    (``mapped_claim``): no training needed."""
    store = root / "ablations"
    shutil.copytree(RESULTS / name / "quick", store / name / "quick")
    shutil.copytree(MAP_DIR, store / name / "quick" / "maps" / slug(MAP["axes"]))
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
    assert built.hypotheses == hypotheses_in(store) == len(json.loads((RESULTS / MAPPED / "quick" / "verdict.json").read_text())["hypotheses"])
    rows = [r for r in parse(out / "index.html").rows if r.get("class") == "hyp"]
    assert len(rows) == built.hypotheses
    page = (out / "claims" / f"{MAPPED}.html").read_text()
    last = f"heatmap_{len(MAP['cells'][0]['hypotheses']) - 1}.png"  # one heatmap per hypothesis
    assert last in page and f"labbench pilot {MAPPED}" in page
    assert (out / "claims" / MAPPED / "quick" / "maps" / slug(MAP["axes"]) / last).is_file()


def users_store(tmp_path: Path) -> Path:
    """A user's store: one catalog claim (``MAPPED``'s committed results) and a claim of the user's own,
    `my-claim` (a copy of them under another name, outside the catalog)."""
    store = store_from_committed(tmp_path)
    mine = store / "my-claim" / "quick"
    shutil.copytree(store / MAPPED / "quick", mine, ignore=shutil.ignore_patterns("maps", "pilot", "runs"))
    verdict = json.loads((mine / "verdict.json").read_text())
    (mine / "verdict.json").write_text(json.dumps({**verdict, "name": "my-claim", "claim_id": ""}))
    return store


def test_a_users_store_shows_its_own_claims_in_their_section_with_their_specs(tmp_path, capsys):
    """Issue 29, item 7: a store's site lists only the claims it has results for, under a title that names the store;
    a claim outside the catalog goes under "Your claims"; without its spec its freshness is "unknown" (not "stale"),
    with `--specs` its results are checked against it."""
    store = users_store(tmp_path)
    out = tmp_path / "site"
    build(store, out)
    index = (out / "index.html").read_text()
    assert f"labbench: the results in {store.as_posix()}" in index and "which beliefs about deep learning hold up" not in index
    assert "2 claims with results in this store" in index and 'data-answer="not run yet"' not in index
    assert "Your claims (specs outside the catalog)" in index
    page = (out / "claims" / "my-claim.html").read_text()
    assert "freshness unknown" in page and "Made from another version of the spec" not in page
    assert "labbench site --specs PATH" in page
    spec = yaml.safe_load((REPO / "experiments" / f"{MAPPED}.yaml").read_text())
    spec_file = tmp_path / "mine" / "my-claim.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(yaml.safe_dump({**spec, "name": "my-claim", "claim": spec["claim"] + " (mine)"}))
    assert main(["site", "--source", str(store), "--out", str(out), "--specs", str(spec_file.parent)]) == 0
    page = (out / "claims" / "my-claim.html").read_text()
    assert f"spec <code>{spec_file.as_posix()}</code>" in page and "(mine)" in page
    assert "Made from another version of the spec" in page  # a changed claim: another hash, stale
    assert main(["site", "--source", str(store), "--out", str(out), "--specs", str(tmp_path / "nowhere.yaml")]) == 2
    assert "no such file or folder" in " ".join(capsys.readouterr().out.split())

    # Without --specs, a result whose spec file is still where it ran from (its spec_ref) finds it there and is
    # checked against it: fresh when the hash matches, stale when the file changed, unknown when it is gone.
    mine_spec = specs.load(str(spec_file))
    path = store / "my-claim" / "quick" / "verdict.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "spec_ref": str(spec_file),
                                "spec_hash": specs.fingerprint(mine_spec, "quick")}))
    build(store, out)
    page = (out / "claims" / "my-claim.html").read_text()
    assert f"spec <code>{spec_file.as_posix()}</code>" in page and "(mine)" in page
    assert "freshness unknown" not in page and "Made from another version of the spec" not in page
    spec_file.write_text(yaml.safe_dump({**spec, "name": "my-claim", "claim": spec["claim"] + " (changed since)"}))
    build(store, out)
    assert "Made from another version of the spec" in (out / "claims" / "my-claim.html").read_text()
    spec_file.write_text(yaml.safe_dump({**spec, "name": "someone-else"}))  # the path now holds another claim's spec
    build(store, out)
    assert "freshness unknown" in (out / "claims" / "my-claim.html").read_text()


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
    other = min(p.parent.parent.name for p in RESULTS.glob("*/quick/curves.png")  # a claim the store below lacks
                if p.parent.parent.name != MAPPED and (out / "claims" / p.parent.parent.name / "quick" / "curves.png").is_file())
    old = out / "claims" / other / "quick" / "curves.png"
    build(store_from_committed(tmp_path), out)  # a source with one claim's results (MAPPED's)
    assert not old.exists() and not old.parent.exists()
    assert (out / "screenshot.png").read_bytes() == b"kept: not the builder's"
    assert not (out / "claims" / f"{other}.html").exists()  # a store's site shows the claims it holds results for


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

def browser_or_skip(width: int = 1400, height: int = 1000):
    """Debian's Chromium and its driver (``labbench.site.browser``), or a skip that names what to install (never a silent pass)."""
    try:
        return chromium(width, height)
    except NoBrowser as err:
        pytest.skip(str(err))


def expected_answers(results: Path) -> dict[str, str]:
    """Each claim's answer, read from the verdict files alone (not through the site's code): a report's ``answer``, or
    "no claim-level answer yet" where it has none; a catalog claim without any report is "not run yet"."""
    answers: dict[str, str] = {}
    for path in sorted(results.glob("*/*/verdict.json")):
        answer = (json.loads(path.read_text()).get("answer") or {}).get("answer") or "no claim-level answer yet"
        answers.setdefault(path.parent.parent.name, answer)  # one row per claim (the committed results have one profile)
    return {**{name: "not run yet" for name in specs.available()}, **answers}


def counted(answers: dict[str, str]) -> dict[str, int]:
    return {a: list(answers.values()).count(a) for a in set(answers.values())}


GLOSSARY = ("holds here", "holds in k of n settings", "setting-dependent", "smaller than claimed", "does not hold here",
            "does not hold in k of n settings", "not shown", "out of regime", "setup failed", "no claim-level answer yet",
            "not run yet", "quick", "full", "capped")


def test_the_site_in_a_real_browser_with_the_network_off(site, tmp_path):
    driver = browser_or_skip()
    try:
        pages = [site / "index.html", site / "sources.html", *sorted((site / "claims").glob("*.html"))]
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
        shot = tmp_path / "screenshot.png"  # the committed pictures: scripts/site_screenshots.py
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        contradicted = [r for r in rows if r.get_attribute("data-verdict") == "contradicted"]
        assert contradicted, "the committed results have a contradicted hypothesis to filter on"
        driver.find_element("css selector", "input[name=verdict][value=contradicted]").click()
        shown = [r for r in rows if r.is_displayed()]
        assert shown and {r.get_attribute("data-verdict") for r in shown} == {"contradicted"}
        assert len(shown) == len(contradicted)
        assert not any(r.is_displayed() for r in driver.find_elements("css selector", "tr.status"))

        # the forest plot follows the filter: its contradicted rows stay, every other row fades
        faded = driver.execute_script("""return Array.from(document.querySelectorAll('#forest-box g[data-verdict]'))
            .map(g => [g.dataset.verdict, g.classList.contains('filtered-out'), parseFloat(getComputedStyle(g).opacity)])""")
        assert faded and all(out == (v != "contradicted") for v, out, _ in faded), faded[:5]
        assert all((o < 0.5) == out for _, out, o in faded)

        driver.find_element("css selector", "input[name=section][value=B]").click()
        shown = [r for r in rows if r.is_displayed()]
        assert shown and {(r.get_attribute("data-verdict"), r.get_attribute("data-section")) for r in shown} == {("contradicted", "B")}
        assert driver.current_url.endswith("index.html#verdict=contradicted&section=B")  # the filter kept in the URL
        driver.refresh()  # ... so a reload (or a shared link) shows the same rows
        rows = driver.find_elements("css selector", "tr.hyp")
        assert driver.find_element("css selector", "input[name=verdict][value=contradicted]").is_selected()
        assert {(r.get_attribute("data-verdict"), r.get_attribute("data-section")) for r in rows if r.is_displayed()} == {("contradicted", "B")}
        driver.find_element("css selector", "input[name=verdict][value=all]").click()
        driver.find_element("css selector", "input[name=section][value=all]").click()
        assert sum(r.is_displayed() for r in rows) == len(rows)
        assert "#" not in driver.current_url  # every filter back at "all": a plain URL

        # The top of the index: one row per claim with the answer its verdict file gives, counted by claim, and the
        # glossary open where there is room; the first claims (answered ones first) above the fold of a 1400 x 900 laptop.
        resize(driver, 1400, 900)
        driver.get((site / "index.html").as_uri())
        answers = expected_answers(RESULTS)
        shown = {r.get_attribute("id").removeprefix("row-"): r.get_attribute("data-answer")
                 for r in driver.find_elements("css selector", "tr.claim-row")}
        assert shown == answers
        counts = {li.get_attribute("data-answer"): int(li.find_element("css selector", ".count").text)
                  for li in driver.find_elements("css selector", "#answer-counts li")}
        assert counts == counted(answers) and sum(counts.values()) == len(answers)
        assert driver.execute_script("return document.getElementById('glossary').open")
        first = driver.find_element("css selector", "tr.claim-row")
        assert first.get_attribute("data-answer") not in ("no claim-level answer yet", "not run yet")  # answered claims lead
        # its name and its answer are read without scrolling (the row's height follows its claim's text, so its middle
        # may fall below the fold when the leading claim is a long one: what must show is what it says)
        for part in (first.find_element("css selector", "a.claim-link"), first.find_element("css selector", "td.answer-cell .answer")):
            assert part.rect["y"] + part.rect["height"] < 900, f"the first claim's {part.text!r} is below the fold at 1400 x 900"

        # A tablet (768) and a phone (390 x 844): no page is wider than the screen; on the phone the filter bar scrolls
        # away, the glossary is one tap away, the forest plot keeps its size in a box of its own.
        for screen in (768, 390):
            resize(driver, screen, 844)
            for page in pages:
                driver.get(page.as_uri())
                # measured once every image is decoded and laid out (two animation frames later): a width read while a
                # 1,500 px plot is still being decoded is the browser's, not the page's (seen once in a clean clone)
                driver.execute_async_script(
                    "const done = arguments[arguments.length - 1];"
                    "Promise.all([...document.images].map(i => i.decode().catch(() => null)))"
                    ".then(() => requestAnimationFrame(() => requestAnimationFrame(done)));")
                width = driver.execute_script("return [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
                assert width[2] == screen and max(width[:2]) <= screen, f"{page.name}: {width[:2]} px wide at a {screen} px screen"
        driver.get((site / "index.html").as_uri())
        glossary = driver.find_element("css selector", "#glossary")
        assert not glossary.get_attribute("open")  # closed on a phone, where it would push the claims off the screen
        text = glossary.get_attribute("textContent")
        assert all(word in text for word in GLOSSARY), [w for w in GLOSSARY if w not in text]
        glossary.find_element("css selector", "summary").click()
        assert glossary.get_attribute("open") and driver.execute_script("return document.documentElement.scrollWidth") <= 390
        bar = driver.find_element("css selector", "#filters")
        assert bar.value_of_css_property("position") not in ("sticky", "fixed")
        sizes = driver.execute_script("""return Array.from(document.querySelectorAll('.claim-text, .effect, .chip, td.hyp-name'))
            .map(e => parseFloat(getComputedStyle(e).fontSize))""")
        assert sizes and min(sizes) >= 11, f"text as small as {min(sizes)} px on a phone"
        forest = driver.execute_script("""var svg = document.querySelector('#forest-box svg'), box = document.getElementById('forest-box');
            return [svg.getBoundingClientRect().width, svg.width.baseVal.value, box.getBoundingClientRect().width, box.scrollWidth,
                    Math.min(...Array.from(svg.querySelectorAll('g[id$="-label"] text')).map(t => t.getBoundingClientRect().height))]""")
        assert abs(forest[0] - forest[1]) < 1 and forest[1] > forest[2] and forest[3] >= forest[1] - 1, f"forest plot shrunk on a phone: {forest}"
        assert forest[4] >= 10, f"forest labels {forest[4]:.1f} px tall on a phone"
    finally:
        driver.quit()


def test_a_users_store_site_in_a_real_browser(tmp_path):
    """Issue 29, item 8: the site of a user's store (a catalog claim and one of the user's own) opens offline, fits a
    phone, lists only its claims (the user's under its own heading), every link resolves, the forest rows included."""
    store = users_store(tmp_path)
    out = tmp_path / "site"
    build(store, out)
    driver = browser_or_skip(390, 844)
    try:
        resize(driver, 390, 844)
        driver.get((out / "index.html").as_uri())
        rows = {r.get_attribute("id").removeprefix("row-"): r.get_attribute("data-section") for r in driver.find_elements("css selector", "tr.claim-row")}
        assert rows == {MAPPED: section_of(specs.load(MAPPED).claim_id), "my-claim": "user"}
        user = driver.find_element("css selector", "input[name=section][value=user]")
        assert "Your claims" in user.find_element("xpath", "..").get_attribute("title")
        width = driver.execute_script("return [document.documentElement.scrollWidth, document.body.scrollWidth]")
        assert max(width) <= 390, f"the store's index is {width} px wide on a 390 px phone"
        links = driver.execute_script("""return Array.from(document.querySelectorAll('a')).map(a =>
            a.href instanceof SVGAnimatedString ? new URL(a.href.baseVal, document.baseURI).href : a.href)""")
        forest = [u for u in links if "#h-" in u]
        assert forest and any("my-claim.html#h-quick-" in u for u in forest)
        for href in links:
            parts = urlsplit(href)
            assert parts.scheme == "file" and Path(unquote(parts.path)).is_file(), href
        target = next(u for u in forest if "my-claim.html" in u)
        driver.get(target)  # a forest row lands on its hypothesis
        assert driver.execute_script("return !!document.getElementById(arguments[0])", urlsplit(target).fragment)
    finally:
        driver.quit()


def claim_row_html(index: str, name: str) -> str:
    """The HTML of one claim's row in the index's claims table."""
    start = index.index(f'<tr class="claim-row" id="row-{name}"')
    return index[start:index.index("</tr>", start)]


def test_the_index_counts_claims_by_answer_and_a_claim_shows_its_answer(tmp_path):
    store = store_from_committed(tmp_path)
    path = store / MAPPED / "quick" / "verdict.json"
    verdict = json.loads(path.read_text())
    verdict["answer"] = {"answer": "holds here", "primary": verdict["hypotheses"][0]["name"], "because": "the primary hypothesis is supported",
                         "setting": "MNIST5k data, MLP model, 225-3600 steps, 8 seeds (quick profile)"}
    verdict["hypotheses"][0]["role"] = "primary"
    path.write_text(json.dumps(verdict))
    out = tmp_path / "site"
    build(store, out)
    index = (out / "index.html").read_text()
    assert '<li data-answer="holds here"><span class="answer a-holds">holds here</span> <b class="count">1</b></li>' in index
    assert 'data-answer="not run yet"' not in index  # a store: only its claims, no catalog rows around them
    row = claim_row_html(index, MAPPED)
    assert 'data-answer="holds here"' in row and "no claim-level answer yet" not in row
    if verdict.get("settings"):  # a claim answered in settings: the row names the primary and lists each setting's answer
        assert f"primary hypothesis: {verdict['answer']['primary']}" in html.unescape(row)
        for setting in verdict["settings"]:
            assert f'<span class="setting-name" title="{setting["description"]}">{setting["name"]}</span>' in html.unescape(row), setting["name"]
    else:  # one setting: the answer's reason and the setting's chips
        assert "the primary hypothesis is supported" in row and "Primary: " in row
        for chip in ("MNIST5k", "MLP", "225-3600 steps", "8 seeds"):
            assert f">{chip}</span>" in row, chip
    assert '>quick: holds here</span>' in index  # the hypothesis table's claim heading says it too


def test_every_claim_row_says_what_its_verdict_file_says_and_no_more(site):
    """A re-answered claim shows its answer and each setting's; an old-method report says it has no claim-level answer,
    with its hypotheses' verdicts counted and linked, never an answer word it does not have."""
    index = (site / "index.html").read_text()
    answers = expected_answers(RESULTS)
    assert {a for a in answers.values() if a not in ("no claim-level answer yet", "not run yet")}, "a re-answered claim to check"
    assert "no claim-level answer yet" in answers.values()
    for path in sorted(RESULTS.glob("*/quick/verdict.json")):
        v = json.loads(path.read_text())
        row = claim_row_html(index, v["name"])
        page = (site / "claims" / f"{v['name']}.html").read_text()  # the claim page's top says the same
        assert f'id="answer" data-answer="{(v.get("answer") or {}).get("answer") or "no claim-level answer yet"}"' in page, v["name"]
        if v.get("answer"):
            assert f'data-answer="{v["answer"]["answer"]}"' in row and f'>{v["answer"]["answer"]}</span>' in row
            for st in v.get("settings") or []:
                assert f">{st['name']}</span>" in row and f">{st['answer']}</span>" in row, (v["name"], st["name"])
                data, model = st["line"].split(" data, ")[0], st["line"].split(" data, ")[1].split(" model, ")[0]
                assert f'title="data">{data}</span>' in row and f'title="model">{model}</span>' in row
            assert row.count("Primary: ") == max(1, len(v.get("settings") or []))
        else:
            assert 'data-answer="no claim-level answer yet"' in row and "reported before the claim-level method" in row
            assert not any(f'class="answer a-{kind}"' in row for kind in ("holds", "fails", "mixed", "open")), v["name"]
            assert "Primary: " not in row and f'href="#claim-{v["name"]}"' in row
            verdicts = [h["verdict"] for h in v["hypotheses"]]
            for word in set(verdicts):
                assert f'<span class="verdict v-{word}">{verdicts.count(word)} {word}</span>' in row, (v["name"], word)
            assert row.count('title="seeds"') == 0 and 'title="paired seeds"' in row  # the setting's chips, from its Setup table


def test_the_chips_come_from_the_setting_line_or_the_reports_setup_table(tmp_path):
    assert line_chips("MNIST5k data, MLP model, 15 epochs, 11 seeds (quick profile)") == \
        {"data": "MNIST5k", "model": "MLP", "budget": "15 epochs", "seeds": "11 seeds", "profile": "quick"}
    assert line_chips("2 settings: mlp-mnist; cnn-digits") is None
    report = tmp_path / "report.md"
    report.write_text("""# x

## Arms

| arm | overrides | runs |
|---|---|---|
| `deep` | `model.depth=8` `optimizer.lr=0.1` | 8 completed |
| `shallow` | `model.depth=2` | 8 completed |

## Setup

| | |
|---|---|
| data | `MNIST5k` splits {'train': 3600, 'val': 400, 'test': 1000} input [1, 28, 28] |
| model | `MLP` depth=8, width=128, dropout=0.0, residual=False |
| budget | 500 steps, batch 64, precision 32-true; sized before any comparison by the pilot |
| seeds | 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (shared by all arms: paired) |

## Plots
""")
    # the depth is the arms' own, so the chip names the parameters they share and says where they differ
    assert setup_chips(report, "quick") == {"data": "MNIST5k (3,600 train)", "model": "MLP width=128, dropout=0.0; arms differ in depth",
                                            "budget": "500 steps", "seeds": "10 seeds", "profile": "quick"}
    report.write_text(report.read_text().replace("`model.depth=8` `optimizer.lr=0.1`", "`model=cnn`").replace("`model.depth=2`", "`model=mlp`"))
    assert setup_chips(report, "quick")["model"] == "per arm: cnn / mlp"
    assert setup_chips(tmp_path / "missing.md", "quick") is None


def test_the_key_effect_is_said_in_points_for_a_share_and_in_the_metrics_units_otherwise():
    h = {"n": 11, "mean_diff": 0.01582, "ci_low": 0.0118, "ci_high": 0.01984, "metric": "test/acc", "kind": "difference",
         "direction": "higher", "better": "small", "worse": "large", "margin": 0.0}
    assert effect_words(h) == "`small` higher than `large`: +1.6 points of test accuracy [+1.2, +2.0], 11 seeds"
    loss = {**h, "metric": "test/loss", "direction": "lower", "mean_diff": 0.05, "ci_low": 0.01, "ci_high": 0.09}
    assert effect_words(loss) == "`small` lower than `large`: 0.05 [0.01, 0.09] in `test/loss`, 11 seeds"
    assert effect_words({**h, "n": 0}) == "not measured"
    # a margin on a share is said in the same points as the effect
    assert effect_words({**h, "margin": -0.005}).startswith("`small` higher than `large` by > -0.5 points: +1.6 points")


def test_a_claim_row_says_where_holm_across_settings_held_a_setting_back_and_what_an_old_report_lacks():
    primary = {"name": "p", "role": "primary", "metric": "test/acc", "kind": "difference", "direction": "higher", "better": "a",
               "worse": "b", "margin": 0.0, "n": 8, "mean_diff": 0.02, "ci_low": 0.01, "ci_high": 0.03}
    report = {"profile": "quick", "report_md": None, "hypotheses": [], "settings": [
        {"name": "s1", "answer": "holds here", "answer_alone": "holds here", "line": "Digits data, CNN model, 500 steps, 8 seeds (quick profile)"},
        {"name": "s2", "answer": "not shown", "answer_alone": "holds here", "line": "MNIST5k data, MLP model, 300 steps, 8 seeds (quick profile)"}],
        "answer": {"answer": "holds in 1 of 2 settings", "primary": "p", "because": "s1: holds here; s2: not shown (alone: holds here)"},
        "raw_hypotheses": [{**primary, "setting": "s1"}, {**primary, "setting": "s2", "mean_diff": 0.01}]}
    pilots = [{"capped": True, "profile": "quick", "setting": "s2"}]
    row = claim_row({"reports": [report], "pilots": pilots, "status": "reported", "status_text": ""})
    assert row["answer"] == "holds in 1 of 2 settings" and row["kind"] == "holds" and row["because"] == "primary hypothesis: p"
    s1, s2 = row["settings"]
    assert s1["alone"] == "" and s2["alone"] == "alone: holds here; not after Holm's correction across the 2 settings"
    assert (s1["chips"]["capped"], s2["chips"]["capped"]) == (False, True)  # the capped pilot is s2's own
    assert s2["effect"].endswith("+1.0 points of test accuracy [+1.0, +3.0], 8 seeds")

    old = {"profile": "quick", "report_md": None, "answer": None, "settings": [], "raw_hypotheses": [],
           "hypotheses": [{"verdict": "supported"}, {"verdict": "a word from a newer method"}, {"verdict": "supported"}]}
    row = claim_row({"reports": [old], "pilots": [], "status": "reported", "status_text": ""})
    assert row["answer"] == "no claim-level answer yet" and row["kind"] == "none"
    assert row["tally"] == [("supported", 2), ("a word from a newer method", 1)] and row["settings"][0]["effect"] == ""
    assert claim_row({"reports": [], "pilots": [], "status": "not run yet", "status_text": "No results yet."})["answer"] == "not run yet"


def test_plots_saved_at_2x_are_shown_at_half_their_pixels(tmp_path):
    """Issue 29, item 6: report and map plots are saved at 200 dpi (report.FIGURE_DPI) and the site gives each image its
    size in CSS pixels from the PNG's own resolution, so a 2x plot is sharp on a high-density screen at its 1x size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labbench.ablation.report import FIGURE_DPI
    from labbench.site.render import Assets, display_size, markdown_html

    assert FIGURE_DPI == 200
    fig, _ = plt.subplots(figsize=(3, 2))
    for dpi in (100, 200):
        fig.savefig(tmp_path / f"p{dpi}.png", dpi=dpi)
    plt.close(fig)
    assert display_size(tmp_path / "p100.png") == (300, 200)
    assert display_size(tmp_path / "p200.png") == (300, 200)  # 600 x 400 pixels, shown at 300 x 200
    (tmp_path / "x.txt").write_text("not a picture")
    assert display_size(tmp_path / "x.txt") is None
    (tmp_path / "r.md").write_text("# t\n\n![a plot](p200.png)\n")
    html = markdown_html(tmp_path / "r.md", "claims/x", "claims", Assets())
    assert 'width="300" height="200"' in html and 'alt="a plot"' in html


def test_an_answer_whose_arms_were_tuned_once_carries_the_chip_and_the_glossary_quotes_the_control(site):
    """Issue 26, item 6: the tuned A/A control found choosing once above its bar; the scoreboard marks each answer
    made so (the claims validation excuses, controls apart) and its glossary quotes the control's measured rates."""
    from labbench.ablation.validation import TUNED_ONCE

    index = (site / "index.html").read_text()
    marked = {n for n in TUNED_ONCE if not specs.load(n).control}
    for path in RESULTS.glob("*/quick/verdict.json"):
        name = path.parent.parent.name
        assert ('class="chip capped tuned-once"' in claim_row_html(index, name)) == (name in marked), name
    for name in sorted(marked)[:1]:  # its own page carries the chip too (the list shrinks as they are re-run nested)
        assert 'class="chip capped tuned-once"' in (site / "claims" / f"{name}.html").read_text()
    glossary = index[index.index('id="g-tuned-once"'):index.index('id="g-none"')]
    aa = json.loads((REPO / "docs" / "bench" / "tuned-aa.json").read_text())
    best3 = [100 * info["procedures"]["best of 3"]["hypotheses"]["A beats B on test accuracy (it should not)"]["false_positive"]
             for info in aa["settings"].values()]
    nested = [100 * info["procedures"]["nested"]["hypotheses"]["A beats B on test accuracy (it should not)"]["false_positive"]
              for info in aa["settings"].values()]
    for figure in best3:
        assert f"{figure:.1f}%" in glossary
    assert f"{min(nested):.1f}-{max(nested):.1f}%" in glossary and f"bar of {100 * aa['bar']:.0f}%" in glossary
