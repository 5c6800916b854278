"""The seed questions the claims cite (``sources:`` of experiments/*.yaml), readable on the site.

``src/labbench/site/seed_questions.yaml`` gives each citation key its file, the question's line
verbatim and its English. Checked here: every key of every spec has an entry (a new spec citing an
unknown question fails, naming the key and the file to edit), each entry is the question its label
numbers, and, where the seed files are at hand (they live outside the repository:
``../shared/seeds`` beside the checkout, or ``$LABBENCH_SEEDS``), every original is in its file word
for word. The built page itself is checked in tests/test_site.py, on the site it builds once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import REPO

from labbench.ablation import spec as specs
from labbench.site import seeds

SEEDS = Path(os.environ.get("LABBENCH_SEEDS") or REPO.parent / "shared" / "seeds")
DATA = seeds.load()
QUESTIONS = DATA["questions"]


def spec_sources() -> dict[str, list[str]]:
    return {name: list(specs.load(name).sources) for name in specs.available()}


@pytest.mark.unit
def test_every_citation_of_every_spec_has_an_entry():
    missing = seeds.unknown(spec_sources(), QUESTIONS)
    assert not missing, "\n".join(missing)


@pytest.mark.unit
def test_a_citation_without_an_entry_names_the_key_and_the_file_to_edit():
    sources = {"new-claim": ["seeds/004 Q36, Q99 (two questions)", "seeds/002 §1.2 (known)", "design.md: not a seed file"]}
    assert seeds.unknown(sources, QUESTIONS) == [
        "experiments/new-claim.yaml cites 'seeds/004 Q99': add an entry for it to src/labbench/site/seed_questions.yaml "
        "(file, label, original verbatim, english)"]


@pytest.mark.unit
def test_a_source_string_gives_one_key_per_question_it_cites():
    assert seeds.keys("seeds/004 Q26 (why Post-Norm trains unstably and Pre-Norm fixes it)") == ["seeds/004 Q26"]
    assert seeds.keys("seeds/002 §1.2 (activation functions; §1.2.3 compares them)") == ["seeds/002 §1.2"]  # the parenthesis is words
    assert seeds.keys("seeds/004 Q36, Q38 (blurry samples; the KL term)") == ["seeds/004 Q36", "seeds/004 Q38"]
    assert seeds.keys("seeds/003 (batch size)") == ["seeds/003"]  # the file as a whole
    assert seeds.keys("design.md: an A/A control must come out inconclusive") == []
    pieces = seeds.links("seeds/004 Q36, Q38 (blurry samples)", QUESTIONS)
    assert [(p["text"], p.get("anchor")) for p in pieces] == [
        ("seeds/004 Q36", "s004-q36"), (", ", None), ("Q38", "s004-q38"), (" (blurry samples)", None)]
    assert [p["key"] for p in seeds.links("seeds/004 Q99 (not there)", QUESTIONS)] == [None, None]  # no link to a missing row
    assert seeds.anchor("seeds/002 §3.1.1") == "s002-s3-1-1" and seeds.anchor("seeds/003") == "s003"


@pytest.mark.unit
def test_each_entry_is_the_question_its_label_numbers():
    assert set(DATA["files"]) == {"000", "001", "002", "003", "004"} and DATA["note"].strip()
    assert len({seeds.anchor(k) for k in QUESTIONS}) == len(QUESTIONS)  # one row id each
    for key, q in QUESTIONS.items():
        assert all(isinstance(q.get(f), str) and q[f].strip() == q[f] and q[f] for f in ("file", "label", "original", "english")), key
        number, _, label = key.removeprefix("seeds/").partition(" ")
        assert q["file"] == DATA["files"][number]["file"] and q["file"].startswith(f"{number}_"), key
        assert q["label"] == (label or "whole file"), key
        if label.startswith("Q"):  # question n: its line starts "n." in the numbering the file's note describes
            assert re.match(rf"{label[1:]}\.\s*\S", q["original"]) and q["english"].startswith(f"{label[1:]}. "), key
        elif label.startswith("§"):  # a section: its heading
            assert re.match(rf"{re.escape(label[1:])}(?![\d.])", q["original"]) and q["english"].startswith(f"{label[1:]} "), key
        else:
            assert not label and q.get("note"), f"{key}: a file cited as a whole says so in a note"


@pytest.mark.unit
@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"the seed files are outside the repository and not at {SEEDS} (set LABBENCH_SEEDS)")
def test_every_original_is_verbatim_in_its_seed_file():
    for number, f in DATA["files"].items():
        text = (SEEDS / f["file"]).read_text(encoding="utf-8")
        if f["title"]:
            assert f["title"] in text, number
    for key, q in QUESTIONS.items():
        text = (SEEDS / q["file"]).read_text(encoding="utf-8")
        assert q["original"] in text, f"{key}: {q['original']!r} is not in {q['file']}"
        # a note quoting the file (Chinese in double quotes) quotes it word for word too
        for quoted in [t for t in re.findall(r'"([^"]*)"', q.get("note", "")) if re.search(r"[\u4e00-\u9fff]", t)]:
            assert quoted in text, f"{key}: the note's {quoted!r} is not in {q['file']}"
