"""Text edits of a spec file that a command makes for the user: one value of one profile, comments and layout kept.

The pilot writes the budget it chose (``overrides``), ``reproduce --update-estimate`` the minutes it
measured (``estimated_minutes``); for a setting, into ``settings > NAME > profiles > PROFILE``. The
file is block-style YAML indented two spaces a level, as the shipped specs and ``labbench new``'s
template are; a value is replaced where it is (a one-line value, or a block of ``- item`` lines) or
inserted as the entry's first line, and missing levels below ``settings`` are created.
"""

from __future__ import annotations

from pathlib import Path

from labbench.ablation.spec import Spec, SpecError


def set_profile_value(spec: Spec, profile: str, key: str, value: str, comment: str = "") -> tuple[Path, str]:
    """Write ``key: value  # comment`` into ``profile``'s entry (the setting's, for a spec in a setting).

    Returns the file and its text before the edit (to restore it if the caller's check fails)."""
    path = spec.path
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    keys = ["settings", spec.setting, "profiles", profile] if spec.setting else ["profiles", profile]
    start, end = entry(lines, keys, create=bool(spec.setting))
    indent = " " * (2 * len(keys))
    at = next((i for i in range(start + 1, end) if lines[i].startswith(f"{indent}{key}:")), None)
    text = f"{indent}{key}: {value}" + (f"   # {comment}" if comment else "") + "\n"
    if at is None:
        lines.insert(start + 1, text)
    else:
        stop = at + 1
        if lines[at].split("#")[0].strip() == f"{key}:":  # a block of "- item" lines follows
            while stop < end and lines[stop].lstrip().startswith(("- ", "#")) and lines[stop].startswith(indent) \
                    and (lines[stop].startswith(indent + "  ") or lines[stop][len(indent)] in "-#"):  # "- item" indented or not
                stop += 1
        lines[at:stop] = [text]
    path.write_text("".join(lines))
    return path, original


def entry(lines: list[str], keys: list[str], create: bool = False) -> tuple[int, int]:
    """The line of the block-style mapping entry at ``keys`` (``settings`` > NAME > ``profiles`` > ``quick``, two spaces a
    level) and the end of its block; with ``create``, missing levels below the first are inserted."""
    lo, hi = 0, len(lines)
    last = -1
    for depth, key in enumerate(keys):
        indent = " " * (2 * depth)
        found = next((i for i in range(lo, hi) if lines[i].rstrip("\n").split("#")[0].rstrip() == f"{indent}{key}:"), None)
        if found is None:
            if not create or depth == 0:
                raise SpecError(f"no `{indent}{key}:` entry under `{': '.join(keys[:depth]) or 'the spec'}` to write into")
            lines.insert(hi, f"{indent}{key}:\n")
            found = hi
            hi += 1
        lo = found + 1
        hi = next((i for i in range(lo, hi) if lines[i].strip() and not lines[i].startswith(indent + "  ")
                   and not lines[i].lstrip().startswith("#")), hi)
        last = found
    return last, hi
