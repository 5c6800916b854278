"""Plain dicts -> HTML pages (Jinja2 templates shipped in ``labbench/site/templates``).

Each report, map and pilot keeps its own Markdown (``report.md``, ``map.md``, ``pilot.md``) as
the one description of its content; here it becomes HTML with markdown-it-py, and every image
or file it links to is copied next to the page, so the site opens from ``file://`` and nothing
on it points outside it.
"""

from __future__ import annotations

import posixpath
import struct
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from labbench.ablation.report import _f
from labbench.site.gather import answer_kind

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")  # raw HTML in a report stays text


def _is_local(url: str) -> bool:
    """A relative link to a file: no scheme, no host, not a bare #fragment."""
    parts = urlsplit(url)
    return not (parts.scheme or parts.netloc or url.startswith(("/", "#")) or not parts.path)


class Assets:
    """Files the pages link to, as ``{path in the site: source file}``; the writer copies them."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}

    def add(self, site_path: str, source: Path) -> None:
        self.files[site_path] = source


def markdown_html(path: Path, folder: str, page_dir: str, assets: Assets, drop_preamble: bool = False) -> Markup:
    """``path`` (a report, map or pilot) as HTML for a page in ``page_dir`` of the site.

    Its title goes (the page has its own heading), headings move one level down, and with
    ``drop_preamble`` everything before the first section goes too (the claim, its sources and
    reference: the page shows them once from the spec). Local images and files are copied to
    ``folder`` in the site; a link to something that is not there becomes plain text, so
    every link on the site resolves.
    """
    tokens = _MD.parse(path.read_text())
    if drop_preamble:
        first = next((i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"), 0)
        tokens = tokens[first:]
        tokens = _without_verdict_table(tokens)  # the page's own table shows the verdicts (with plain sentences)
    kept = []
    skip = False
    for t in tokens:
        if t.type == "heading_open" and t.tag == "h1":
            skip = True
            continue
        if skip:
            skip = t.type != "heading_close"
            continue
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(6, int(t.tag[1]) + 1)}"
        if t.type == "table_open":
            t.attrSet("class", "md-table")
        if t.children:
            t.children = _local_links(t.children, path.parent, folder, page_dir, assets)
        kept.append(t)
    return Markup(_MD.renderer.render(kept, _MD.options, {}))


def _without_verdict_table(tokens: list) -> list:
    """``tokens`` without the report's "Verdict" heading and its first table: the page shows the same verdicts in its
    own table (with plain sentences); the section's explanation, checks, gates and regime tables stay."""
    start = next((i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"
                  and i + 1 < len(tokens) and tokens[i + 1].content.strip() == "Verdict"), None)
    if start is None:
        return tokens
    end = next((i for i in range(start, len(tokens)) if tokens[i].type == "table_close"), None)
    if end is None or any(t.type == "heading_open" and t.tag == "h2" for t in tokens[start + 3:end]):
        return tokens  # no table in that section: nothing shown twice
    return tokens[:start] + tokens[end + 1:]


def _local_links(children: list, source_dir: Path, folder: str, page_dir: str, assets: Assets) -> list:
    """Rewrite image sources and links that point to files beside the Markdown."""
    out, dropping = [], 0
    for t in children:
        if t.type == "image":
            src = str(t.attrGet("src") or "")
            if _is_local(src):
                target = _copy(src, source_dir, folder, page_dir, assets)
                if target is None:
                    t = t.__class__(type="text", tag="", nesting=0, content=f"[{t.content} missing]")
                else:
                    t.attrSet("src", target)
                    size = display_size(source_dir / urlsplit(src).path)
                    if size:  # a 2x plot (200 dpi) is shown at half its pixels: sharp on high-density screens
                        t.attrSet("width", str(size[0]))
                        t.attrSet("height", str(size[1]))
        elif t.type == "link_open":
            href = str(t.attrGet("href") or "")
            if _is_local(href):
                target = None if href.endswith(".md") else _copy(href, source_dir, folder, page_dir, assets)
                if target is None:  # another Markdown file or a missing one: keep the words only
                    dropping += 1
                    continue
                t.attrSet("href", target)
        elif t.type == "link_close" and dropping:
            dropping -= 1
            continue
        out.append(t)
    return out


BASE_DPI = 100  # matplotlib's 1x: a figure saved at this many dots per inch is shown at its pixel size


def display_size(path: Path) -> tuple[int, int] | None:
    """A PNG's size in CSS pixels: its pixels scaled by ``BASE_DPI`` / the resolution it was saved at (its pHYs
    chunk, which matplotlib writes), so a figure saved at 200 dpi shows at the size of its 100-dpi version with
    twice the detail. None for anything else (the browser's own size then)."""
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return None
    if not head.startswith(b"\x89PNG\r\n\x1a\n") or len(head) < 24:
        return None
    width, height = struct.unpack(">II", head[16:24])
    at = head.find(b"pHYs")
    if at < 0 or len(head) < at + 13:
        return width, height
    per_x, _, unit = struct.unpack(">IIB", head[at + 4:at + 13])
    dpi = per_x * 0.0254 if unit == 1 else 0.0
    scale = BASE_DPI / dpi if dpi > 1.05 * BASE_DPI else 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def _copy(url: str, source_dir: Path, folder: str, page_dir: str, assets: Assets) -> str | None:
    rel = urlsplit(url).path
    source = (source_dir / rel).resolve()
    if not source.is_file() or not source.is_relative_to(source_dir.resolve()):
        return None
    site_path = posixpath.normpath(posixpath.join(folder, PurePosixPath(*source.relative_to(source_dir.resolve()).parts).as_posix()))
    assets.add(site_path, source)
    return quote(posixpath.relpath(site_path, page_dir))


def number(x: Any, digits: int = 3) -> str:
    return "-" if x is None else _f(float(x), digits)


def environment() -> Environment:
    env = Environment(loader=PackageLoader("labbench.site", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["md_inline"] = lambda text: Markup(_MD.renderInline(str(text)))
    env.filters["num"] = number
    env.filters["url"] = lambda path: quote(str(path))
    env.globals["answer_kind"] = answer_kind  # the colour class of an answer word, for the index and the claim pages alike
    env.globals["STABILITY_WORDS"] = {  # the stability cell's meaning, on hover
        "settled": "judged again at earlier evaluations: the effect did not move in the last half of the budget",
        "unsettled": "the effect still moved in the last half of the budget: a longer run may answer otherwise",
        "-": "not judged: the report has no earlier evaluations to judge the effect at (or predates the check)"}
    return env


def render_site(data: dict[str, Any], source_label: str, forest: str) -> tuple[dict[str, str], Assets]:
    """Every page as text, by its path in the site, and the files they link to; ``forest`` is the forest plot's
    SVG element (empty: nothing to draw), put inline in the index so its rows link and the filters reach them."""
    env = environment()
    assets = Assets()
    pages: dict[str, str] = {}
    counts = {v: 0 for v in data["verdicts"]}
    for c in data["claims"]:
        for r in c["reports"]:
            for h in r["hypotheses"]:
                counts[h["verdict"]] = counts.get(h["verdict"], 0) + 1
    counts["none"] = sum(1 for c in data["claims"] if not c["reports"])
    sections = [s for s in data["sections"] if any(c["section"] == s for c in data["claims"])]

    for c in data["claims"]:
        name = c["name"]
        for kind, items, md_key in (("reports", c["reports"], "report_md"), ("maps", c["maps"], "map_md"), ("pilots", c["pilots"], "pilot_md")):
            for item in items:
                rel = item["folder"].relative_to(data["source"] / name).as_posix()
                item["source_label"] = f"{source_label}/{name}/{rel}"
                item["html"] = (markdown_html(item[md_key], f"claims/{name}/{rel}", "claims", assets, drop_preamble=kind == "reports")
                                if item[md_key] is not None else Markup(""))
                for st in item.get("setting_reports", []):
                    sub = st["folder"].relative_to((data["source"] / name).resolve()).as_posix()
                    st["html"] = (markdown_html(st["report_md"], f"claims/{name}/{sub}", "claims", assets, drop_preamble=True)
                                  if st["report_md"] is not None else Markup(""))
        pages[c["page"]] = env.get_template("claim.html").render(
            c=c, root="../", section_title=data["sections"].get(c["section"], c["section"]), source_label=source_label)
    pages["index.html"] = env.get_template("index.html").render(
        claims=data["claims"], verdicts=data["verdicts"], counts=counts, total=data["hypotheses"],
        claim_counts=data["claim_counts"], by_answer=data["by_answer"],
        profiles=sorted({r["profile"] for c in data["claims"] for r in c["reports"]}),
        sections=sections, section_titles=data["sections"], source_label=source_label, forest=Markup(forest), root="",
        catalog_mode=data.get("catalog_mode", True))
    pages["sources.html"] = env.get_template("sources.html").render(
        note=data["seed_note"], files=data["seed_files"], source_label=source_label, root="")
    return pages, assets
