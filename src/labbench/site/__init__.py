"""``labbench site``: every claim and verdict on one static site, from committed results or a store.

W&B shows one ablation at a time and knows nothing of claims; a reader who asks "which of the
things my notes say are true?" wants the whole catalog at once. The site is built in four
steps, one module each: ``gather`` (result folders -> plain dicts), ``figures`` (the forest
plot of the catalog), ``render`` (Jinja2 pages, the reports' Markdown as HTML) and ``write``
below; ``seeds`` adds ``sources.html``, the seed questions the claims cite (kept outside the
repository, in Chinese) verbatim and in English, from ``seed_questions.yaml``. It needs no
server, no network and no JavaScript from elsewhere: it opens from ``file://``. The same
results give the same bytes (no build time anywhere), so the committed copy in ``docs/site/``
changes only when a result does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from labbench.site.figures import forest_svg, inline
from labbench.site.gather import gather
from labbench.site.render import render_site

MANIFEST = ".labbench-site.json"  # what the last build wrote: a rebuild removes only those files that are gone
STATIC = ("style.css",)  # shipped beside the templates, copied as they are


class SiteError(ValueError):
    """The output folder is not one the builder may write into."""


@dataclass
class Built:
    out: Path
    claims: int
    hypotheses: int
    written: int
    removed: int
    files: list[str]


def build(source: Path | str, out: Path | str, spec_paths: tuple[Path | str, ...] = ()) -> Built:
    """Gather ``source`` (with the user's own specs, ``--specs``), render every page, and write the site into ``out``."""
    source, out = Path(source), Path(out)
    data = gather(source, spec_paths)
    svg = forest_svg(data["claims"])
    pages, assets = render_site(data, source.as_posix().rstrip("/"), forest=inline(svg) if svg else "")
    files: dict[str, bytes] = {path: text.encode() for path, text in pages.items()}
    if svg:
        files["forest.svg"] = svg.encode()
    templates = Path(__file__).parent / "templates"
    for name in STATIC:
        files[name] = (templates / name).read_bytes()
    for path, src in assets.files.items():
        files[path] = src.read_bytes()
    written, removed = write(out, files)
    return Built(out, len(data["claims"]), data["hypotheses"], written, removed, sorted(files))


def _previous(out: Path) -> list[str]:
    """The files the last build wrote; refuses a folder that holds anything else and no manifest."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise SiteError(f"{out} is a file, not a folder")
    manifest = out / MANIFEST
    if not manifest.is_file():
        if any(out.iterdir()):
            raise SiteError(f"{out} exists, is not empty and holds no earlier site ({MANIFEST} is missing): "
                            "refusing to write into it; give an empty or new folder")
        return []
    listed = json.loads(manifest.read_text()).get("files", [])
    return [p for p in listed if _inside(p)]


def _inside(path: str) -> bool:
    """A manifest entry may only name a file below the site folder (never ``..``, never absolute)."""
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts


def write(out: Path, files: dict[str, bytes]) -> tuple[int, int]:
    """Write ``files`` (path in the site -> bytes) into ``out``; a file whose bytes are already
    there is left alone; files of the previous build that are no longer part of the site are
    removed (and folders they leave empty), nothing else. Returns (written, removed)."""
    old = _previous(out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path, content in sorted(files.items()):
        target = out / path
        if target.is_file() and target.read_bytes() == content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written += 1
    removed = 0
    root = out.resolve()
    for path in sorted(set(old) - set(files)):
        target = out / path
        if target.is_file() and target.resolve().is_relative_to(root):
            target.unlink()
            removed += 1
            for folder in target.parents:
                if folder == out or not folder.is_dir() or any(folder.iterdir()):
                    break
                folder.rmdir()
    manifest = json.dumps({"generator": "labbench site", "files": sorted(files)}, indent=1) + "\n"
    (out / MANIFEST).write_text(manifest)
    return written, removed
