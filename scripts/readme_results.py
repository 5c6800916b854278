"""Write the README's results table from the committed reports (docs/results/*/quick/verdict.json).

    python scripts/readme_results.py           # rewrite the block between the markers
    python scripts/readme_results.py --check   # exit 1 if the README's block is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labbench.ablation.board import markdown, replace_block

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the README differs")
    args = parser.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = replace_block(text, markdown(ROOT / "docs" / "results", ROOT))
    if args.check:
        if new != text:
            print("README.md's results table is out of date: run python scripts/readme_results.py")
            return 1
        return 0
    readme.write_text(new)
    print(f"wrote the results table into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
