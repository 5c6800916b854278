"""The seed questions the claims cite, made readable: ``seed_questions.yaml`` beside this module.

Every spec's ``sources:`` names where its claim is made, as "seeds/004 Q26 (why Post-Norm ...)" or
"seeds/002 §3.1.1 (...)": a question in one of five files of interview notes in Chinese that live
outside the repository, so a reader of the site cannot open them. ``seed_questions.yaml`` records,
for each citation key (the words before the parenthesis, one key per question where a source cites
several: "seeds/004 Q36, Q38"), the file, the question's line verbatim and its English; the site's
``sources.html`` shows them, and each claim page links its sources there.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml

DATA = "seed_questions.yaml"
DATA_PATH = "src/labbench/site/seed_questions.yaml"  # where a new key goes, as the tests' messages say
PAGE = "sources.html"
_HEAD = re.compile(r"seeds/(\d+)(?:\s+(.+))?")


def load() -> dict[str, Any]:
    """The data file: ``note``, ``files`` (number -> file, title, english, numbering) and ``questions`` (key -> entry)."""
    return yaml.safe_load(resources.files("labbench.site").joinpath(DATA).read_text(encoding="utf-8"))


def parse(source: str) -> tuple[str, list[str], str] | None:
    """A source string as (file number, its labels, the rest): "seeds/004 Q36, Q38 (why ...)" ->
    ("004", ["Q36", "Q38"], " (why ...)"); "seeds/003 (batch size)" -> ("003", [], " (batch size)").
    None for a source that cites no seed file (the A/A control cites design.md)."""
    head = source.partition("(")[0].rstrip()
    match = _HEAD.fullmatch(head)
    if not match:
        return None
    labels = [part.strip() for part in re.split(r",|\band\b", match[2] or "") if part.strip()]
    return match[1], labels, source[len(head):]


def keys(source: str) -> list[str]:
    """The citation keys of one source string: one per question it cites, "seeds/NNN" for a file cited as a whole."""
    parsed = parse(source)
    if parsed is None:
        return []
    number, labels, _ = parsed
    return [f"seeds/{number} {label}" for label in labels] or [f"seeds/{number}"]


def anchor(key: str) -> str:
    """The id of a key's row on sources.html: "seeds/004 Q26" -> "s004-q26", "seeds/002 §3.1.1" -> "s002-s3-1-1"."""
    slug = re.sub(r"[^a-z0-9]+", "-", key.removeprefix("seeds/").replace("§", "s").lower()).strip("-")
    return f"s{slug}"


def links(source: str, questions: dict[str, Any]) -> list[dict[str, Any]]:
    """A source string in pieces for a page: each cited question's words with its key (``key`` None for plain text).
    A key without an entry stays plain text (tests/test_sources.py names it), so no link points at a missing row."""
    parsed = parse(source)
    if parsed is None:
        return [{"text": source, "key": None}]
    number, labels, rest = parsed
    if not labels:
        pieces = [{"text": f"seeds/{number}", "key": f"seeds/{number}"}]
    else:
        pieces = []
        for i, label in enumerate(labels):
            if i:
                pieces.append({"text": ", ", "key": None})
            pieces.append({"text": f"seeds/{number} {label}" if i == 0 else label, "key": f"seeds/{number} {label}"})
    for piece in pieces:
        if piece["key"] is not None and piece["key"] not in questions:
            piece["key"] = None
        if piece["key"] is not None:
            piece["anchor"] = anchor(piece["key"])
            piece["english"] = questions[piece["key"]]["english"]
    return pieces + ([{"text": rest, "key": None}] if rest else [])


def unknown(sources: dict[str, list[str]], questions: dict[str, Any]) -> list[str]:
    """Every citation without an entry, as a sentence naming the spec, the key and the file to edit."""
    return [f"experiments/{name}.yaml cites {key!r}: add an entry for it to {DATA_PATH} (file, label, original verbatim, english)"
            for name, cited in sorted(sources.items()) for source in cited for key in keys(source) if key not in questions]


def _order(label: str) -> tuple[int, ...]:
    """Q3 before Q26, §1.2 before §1.5.4 before §3.1.1: by the numbers in the label."""
    return tuple(int(n) for n in re.findall(r"\d+", label))


def page_data(claims: list[dict[str, Any]], data: dict[str, Any]) -> list[dict[str, Any]]:
    """sources.html's sections: one per seed file, one row per entry in label order, with the claims that cite it."""
    cited_by: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        for key in dict.fromkeys(k for s in c["sources"] for k in keys(s)):
            cited_by.setdefault(key, []).append(c)
    sections = []
    for number, f in sorted(data["files"].items()):
        rows = [{"key": key, "anchor": anchor(key), "note": "", **q, "cited_by": cited_by.get(key, [])}
                for key, q in data["questions"].items() if key.split()[0] == f"seeds/{number}"]
        rows.sort(key=lambda r: _order(r["label"]))
        sections.append({"number": number, "id": f"file-{number}", **f, "rows": rows})
    return sections
