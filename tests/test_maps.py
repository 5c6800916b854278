"""Verdict maps: a smoke map end to end, cell reuse, known-answer rendering, bad axes."""

from __future__ import annotations

import json

import pytest

from labbench.ablation import spec as specs
from labbench.ablation.maps import matrix, parse_axes, render_markdown, run_map, validate_axes, write_map
from labbench.ablation.spec import SpecError


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_smoke_map_end_to_end_and_cell_reuse(tmp_path):
    spec = specs.load("aa-control").in_setting("mlp-digits")  # a claim with settings maps one setting at a time
    first = run_map(spec, "smoke", {"trainer.max_steps": ["4", "6"]}, root=tmp_path, wandb=False, out_dir=tmp_path / "m1")
    assert first["counts"]["completed"] == 12  # 2 cells x 2 arms x 3 seeds
    saved = json.loads((tmp_path / "m1" / "map.json").read_text())
    assert [c["cell"] for c in saved["cells"]] == [{"trainer.max_steps": "4"}, {"trainer.max_steps": "6"}]
    assert all(h["verdict"] in ("supported", "contradicted", "inconclusive", "exploratory") for c in saved["cells"] for h in c["hypotheses"])
    assert (tmp_path / "m1" / "heatmap_0.png").stat().st_size > 1000
    text = (tmp_path / "m1" / "map.md").read_text()
    assert "one Holm correction over every confirmatory hypothesis of all the map's 2 cells" in text and "across cells (Holm)" in text
    # each cell's report is linked where run_map wrote it, and each heat map says what it shows (issue 29)
    import re

    links = re.findall(r"\]\((cells/[^)]+/report\.md)\)", text)
    assert len(links) == 2 and all((tmp_path / "m1" / link).is_file() for link in links)
    first_name = saved["cells"][0]["hypotheses"][0]["name"]
    assert f"![heat map of the effect of {first_name} across trainer.max_steps](heatmap_0.png)" in text
    runs = [json.loads(p.read_text()) for p in (tmp_path / "aa-control" / "mlp-digits" / "smoke" / "runs").glob("*/run.json")]
    assert sorted({r["config"]["trainer"]["max_steps"] for r in runs}) == [4, 6]

    from labbench.ablation.engine import stored_runs

    assert [stored_runs(spec, "smoke", extra=[f"trainer.max_steps={n}"], root=tmp_path) for n in (4, 6, 8)] == [6, 6, 0]
    second = run_map(spec, "smoke", {"trainer.max_steps": ["6", "8"]}, root=tmp_path, wandb=False, out_dir=tmp_path / "m2")
    assert second["counts"]["skipped"] == 6 and second["counts"]["completed"] == 6  # only the new cell ran
    saved2 = json.loads((tmp_path / "m2" / "map.json").read_text())
    assert saved2["cells"][0]["hypotheses"] == saved["cells"][1]["hypotheses"]  # the shared cell, same numbers


def test_bad_axis_fails_before_anything_runs(tmp_path):
    spec = specs.load("aa-control").in_setting("mlp-digits")
    with pytest.raises(SpecError, match="not a key of the composed config"):
        run_map(spec, "smoke", {"trainer.max_stepz": ["4"]}, root=tmp_path, wandb=False)
    with pytest.raises(SpecError, match="does not compose"):
        validate_axes(spec, "smoke", {"model": ["no_such_model"]})
    assert not (tmp_path / "aa-control").exists()
    with pytest.raises(SpecError, match="KEY=v1,v2"):
        parse_axes(["model.depth"])
    with pytest.raises(SpecError, match="one or two axes"):
        parse_axes(["a=1", "b=2", "c=3"])


def _cell(depth: str, lr: str, diff: float, verdict: str) -> dict:
    h = {"name": "h", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "mean_diff": diff, "n": 8,
         "ci_low": diff - 0.1, "ci_high": diff + 0.1, "prob_improvement": 0.5, "verdict": verdict}
    return {"cell": {"model.depth": depth, "optimizer.lr": lr}, "hypotheses": [h], "status_counts": {}}


def test_table_and_heat_map_encode_the_verdicts_they_are_given(tmp_path):
    result = {
        "name": "demo", "profile": "quick", "seeds": 5, "extra_overrides": [], "correction": "none",
        "axes": {"model.depth": ["2", "6"], "optimizer.lr": ["0.001", "0.01"]},
        "cells": [_cell("2", "0.001", 0.5, "supported"), _cell("2", "0.01", -0.4, "contradicted"),
                  _cell("6", "0.001", 0.0, "inconclusive"), _cell("6", "0.01", 0.3, "supported")],
    }
    rows, cols, grid = matrix(result, 0)
    assert cols == ["2", "6"] and rows == ["0.001", "0.01"]
    assert [[c["verdict"] for c in row] for row in grid] == [["supported", "inconclusive"], ["contradicted", "supported"]]
    text = render_markdown(result)
    assert "| 2 | 0.01 | -0.4 [-0.5, -0.3] | 0.5 | **contradicted** |" in text
    assert "| 6 | 0.001 | 0 [-0.1, 0.1] | 0.5 | **inconclusive** |" in text
    from labbench.ablation.maps import heatmap_legend

    assert heatmap_legend(grid) == "S supported, C contradicted, - inconclusive"
    result["cells"][2] = _cell("6", "0.001", 0.0, "undertrained")
    result["cells"][3] = _cell("6", "0.01", 0.3, "out of regime")
    assert heatmap_legend(matrix(result, 0)[2]) == "S supported, C contradicted, - inconclusive, U undertrained, R out of regime"
    write_map(result, tmp_path)  # every verdict word has a letter (an out-of-regime cell drew a KeyError before)
    assert (tmp_path / "heatmap_0.png").is_file() and json.loads((tmp_path / "map.json").read_text())["cells"][3]["hypotheses"][0]["verdict"] == "out of regime"


@pytest.mark.catalog  # every named ablation's map: with the catalog's smoke runs (CI and -m catalog)
@pytest.mark.parametrize("name", [n for n in specs.available() if specs.load(n).raw.get("map")])
def test_suggested_axes_compose(name):
    from labbench.ablation.maps import suggested_axes

    spec = specs.load(name)
    validate_axes(spec, "smoke", suggested_axes(spec))


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_map_cli_prints_the_plan_and_rejects_bad_axes(tmp_path):
    from conftest import cli

    ok = cli("labbench", "map", "aa-control", "--setting", "mlp-digits", "--profile", "smoke", "--axis", "trainer.max_steps=4", "--no-wandb", "--out", str(tmp_path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 cells x 6 runs = 6 runs" in ok.stdout and "map.md" in ok.stdout and "already stored" not in ok.stdout
    again = cli("labbench", "map", "aa-control", "--setting", "mlp-digits", "--profile", "smoke", "--axis", "trainer.max_steps=4,6", "--no-wandb", "--out", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 cells x 6 runs = 12 runs, 6 already stored (reused); about 0.1 min on a 2-core CPU for the rest" in again.stdout
    assert "with 3 seeds the map's 'across cells' column cannot reach a verdict" in again.stdout  # warned before running
    bad = cli("labbench", "map", "aa-control", "--setting", "mlp-digits", "--profile", "smoke", "--axis", "model.dept=2,4", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert bad.returncode == 2 and "model.dept" in bad.stdout
    assert not (tmp_path / "b").exists()


def test_map_is_logged_to_wandb_as_a_table(tmp_path, monkeypatch):
    import subprocess

    from conftest import BIN
    from labbench.ablation.maps import log_to_wandb

    monkeypatch.setenv("LABBENCH_OUTPUT_DIR", str(tmp_path))
    result = {"profile": "smoke", "axes": {"model.depth": ["2"]}, "cells": [_cell("2", "0.001", 0.5, "supported")]}
    result["cells"][0]["cell"] = {"model.depth": "2"}
    log_to_wandb(result, specs.load("aa-control"))
    (run_dir,) = [p.parent for p in tmp_path.rglob("run-*.wandb")]
    summary = json.loads(subprocess.run([str(BIN / "wandb"), "leet", "inspect", "--summary", "--json", str(run_dir)],
                                        capture_output=True, text=True, timeout=120).stdout)
    assert "verdict_map" in json.dumps(summary) and summary["exit_code"] == 0


@pytest.mark.unit
def test_the_maps_reproduce_line_names_its_own_axes_and_overrides():
    from labbench.ablation.maps import reproduce_command

    result = {"name": "prenorm-vs-postnorm", "profile": "quick", "axes": {"model.n_layers": ["6"], "optimizer.lr": ["0.001", "0.003"]},
              "extra_overrides": ["data.batch_size=16"]}
    assert reproduce_command(result) == ("labbench map prenorm-vs-postnorm --profile quick --axis model.n_layers=6 "
                                         "--axis optimizer.lr=0.001,0.003 data.batch_size=16")
    # a spec with settings maps one of them; without --setting the command would refuse to run
    assert reproduce_command({**result, "axes": {"model.width": [32, 128]}, "setting": "mlp-mnist", "extra_overrides": []}) == \
        "labbench map prenorm-vs-postnorm --setting mlp-mnist --profile quick --axis model.width=32,128"


def _tested_cell(n: int, p_holm: float, hypotheses: int, undertrained: int = 0) -> dict:
    tested = hypotheses - undertrained  # the raw p that gives this Holm-adjusted p when all tested share it
    hyps = [{"n": n, "p_value": p_holm / max(1, tested), "p_holm": p_holm, "mean_diff": 0.5, "margin": 0.0, "verdict": "supported"}
            for _ in range(tested)]
    hyps += [{"n": n, "p_holm": float("nan"), "mean_diff": 0.5, "margin": 0.0, "verdict": "undertrained"} for _ in range(undertrained)]
    return {"cell": {}, "hypotheses": hyps}


@pytest.mark.unit
def test_the_across_cells_column_says_when_no_outcome_could_pass_its_correction():
    """One Holm family over the map's m*k tested hypothesis-cell pairs: with 8 seeds the sign-flip floor 2/2^8 = 0.0078
    times 4*2 is 0.0625 > 0.05, so even all-one-sign cells cannot be 'supported' there."""
    from labbench.ablation.maps import across_cells, across_cells_limit, map_seed_warnings

    mute = [_tested_cell(8, 0.03125, 4), _tested_cell(8, 0.03125, 4)]  # every seed one way, in both cells
    assert across_cells(mute, 0) == ["cannot decide", "cannot decide"]
    limit = across_cells_limit(mute, 0)
    assert "8 seeds" in limit and "multiplying by 8 (0.062)" in limit and "9 seeds would allow it" in limit
    # nine seeds: floor 2/512 * 8 = 0.031, so the same clear cells pass (Holm over the 8 pairs: 8 x 0.0039 <= 0.05)
    assert across_cells([_tested_cell(9, 0.015625, 4), _tested_cell(9, 0.015625, 4)], 0) == ["supported", "supported"]
    # undertrained hypotheses leave the family: one tested hypothesis per cell, 0.0078 x 1 x 2 cells = 0.0156
    assert across_cells_limit([_tested_cell(8, 0.0078125, 4, undertrained=3)] * 2, 0) is None
    # a lone tested cell: the column is the cell's own verdict
    assert across_cells([_tested_cell(8, 0.03125, 4), _tested_cell(8, 0.0, 4, undertrained=4)], 0) == ["supported", "undertrained"]
    text = render_markdown({"name": "d", "profile": "quick", "seeds": 8, "extra_overrides": [], "correction": "c",
                            "axes": {"x": ["1", "2"]},
                            "cells": [{**_cell("1", "", 0.5, "supported"), "cell": {"x": "1"}},
                                      {**_cell("2", "", 0.5, "supported"), "cell": {"x": "2"}}]})
    assert "Across cells:" not in text  # one hypothesis on two cells with 8 seeds: 0.0078 x 2 can pass
    assert map_seed_warnings(8, 4, 4) and "--seeds 10" in map_seed_warnings(8, 4, 4)[0]  # 0.05 / 16 needs 2/2^n <= 0.0031
    assert map_seed_warnings(10, 4, 4) == [] and map_seed_warnings(8, 4, 1) == []


def test_a_map_renders_again_from_its_json_with_non_finite_numbers(tmp_path):
    """map.json stores NaN as "nan" (strict JSON): rendering from the file must give the same page as from memory."""
    from labbench.ablation.maps import rewrite_map

    undefined = {**_cell("2", "0.001", 0.0, "inconclusive"), "cell": {"model.depth": "2"}}
    undefined["hypotheses"][0].update(ci_low=float("nan"), ci_high=float("nan"))
    result = {"name": "demo", "profile": "quick", "seeds": 8, "extra_overrides": [], "correction": "none",
              "axes": {"model.depth": ["2", "6"]}, "cells": [undefined, {**_cell("6", "", 0.3, "supported"), "cell": {"model.depth": "6"}}]}
    write_map(result, tmp_path)
    first = (tmp_path / "map.md").read_text()
    assert "| 2 | 0 [n/a, n/a] |" in first
    (tmp_path / "map.md").unlink()
    rewrite_map(tmp_path)
    assert (tmp_path / "map.md").read_text() == first


@pytest.mark.unit
def test_the_across_cells_column_holds_the_maps_error_when_each_hypothesis_is_null_in_one_cell():
    """The pattern that broke Holm-within-then-across (issue 26: 18.3% family-wise error in a 4 x 4 simulation): in each
    cell one hypothesis is null (raw p 0.04, an effect of noise) and the other three clearly true (p 1e-5). Holm within
    the cell leaves the null at 0.04 (the three true ones go first), Holm across that hypothesis's cells again (the
    other cells' are tiny): 0.04 < 0.05, 'supported' four times by chance. One family over the 16 pairs asks
    0.04 x 4 (the nulls rank last): inconclusive, while every true hypothesis stays supported."""
    from labbench.ablation.maps import across_cells, map_family

    def cell(null: int) -> dict:
        return {"cell": {}, "hypotheses": [{"n": 20, "p_value": 0.04 if j == null else 1e-5, "mean_diff": 0.1, "margin": 0.0,
                                            "verdict": "supported"} for j in range(4)]}

    cells = [cell(null) for null in range(4)]
    assert sorted(round(p, 6) for p in map_family(cells).values())[-4:] == [0.16] * 4  # 0.04 x 4 for the four nulls
    for h in range(4):
        column = across_cells(cells, h)
        assert column[h] == "inconclusive" and all(v == "supported" for i, v in enumerate(column) if i != h)
    # a sanity check stays out of the family and keeps its cell's word; an out-of-regime hypothesis too
    cells[0]["hypotheses"][1] = {**cells[0]["hypotheses"][1], "role": "sanity"}
    cells[1]["hypotheses"][1] = {**cells[1]["hypotheses"][1], "verdict": "out of regime"}
    assert len(map_family(cells)) == 14 and across_cells(cells, 1)[:2] == ["supported", "out of regime"]
