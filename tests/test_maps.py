"""Verdict maps: a smoke map end to end, cell reuse, known-answer rendering, bad axes."""

from __future__ import annotations

import json

import pytest

from labbench.ablation import spec as specs
from labbench.ablation.maps import matrix, parse_axes, render_markdown, run_map, validate_axes, write_map
from labbench.ablation.spec import SpecError


def test_smoke_map_end_to_end_and_cell_reuse(tmp_path):
    spec = specs.load("aa-control")
    first = run_map(spec, "smoke", {"trainer.max_steps": ["4", "6"]}, root=tmp_path, wandb=False, out_dir=tmp_path / "m1")
    assert first["counts"]["completed"] == 12  # 2 cells x 2 arms x 3 seeds
    saved = json.loads((tmp_path / "m1" / "map.json").read_text())
    assert [c["cell"] for c in saved["cells"]] == [{"trainer.max_steps": "4"}, {"trainer.max_steps": "6"}]
    assert all(h["verdict"] in ("supported", "contradicted", "inconclusive") for c in saved["cells"] for h in c["hypotheses"])
    assert (tmp_path / "m1" / "heatmap_0.png").stat().st_size > 1000
    text = (tmp_path / "m1" / "map.md").read_text()
    assert "Holm again across the map's 2 cells" in text and "across cells (Holm)" in text
    runs = [json.loads(p.read_text()) for p in (tmp_path / "aa-control" / "smoke" / "runs").glob("*/run.json")]
    assert sorted({r["config"]["trainer"]["max_steps"] for r in runs}) == [4, 6]

    from labbench.ablation.engine import stored_runs

    assert [stored_runs(spec, "smoke", extra=[f"trainer.max_steps={n}"], root=tmp_path) for n in (4, 6, 8)] == [6, 6, 0]
    second = run_map(spec, "smoke", {"trainer.max_steps": ["6", "8"]}, root=tmp_path, wandb=False, out_dir=tmp_path / "m2")
    assert second["counts"]["skipped"] == 6 and second["counts"]["completed"] == 6  # only the new cell ran
    saved2 = json.loads((tmp_path / "m2" / "map.json").read_text())
    assert saved2["cells"][0]["hypotheses"] == saved["cells"][1]["hypotheses"]  # the shared cell, same numbers


def test_bad_axis_fails_before_anything_runs(tmp_path):
    spec = specs.load("aa-control")
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
    h = {"name": "h", "metric": "val/loss", "better": "a", "worse": "b", "direction": "lower", "mean_diff": diff,
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
    write_map(result, tmp_path)
    assert (tmp_path / "heatmap_0.png").is_file() and json.loads((tmp_path / "map.json").read_text())["cells"][1]["hypotheses"][0]["verdict"] == "contradicted"


@pytest.mark.parametrize("name", [n for n in specs.available() if specs.load(n).raw.get("map")])
def test_suggested_axes_compose(name):
    from labbench.ablation.maps import suggested_axes

    spec = specs.load(name)
    validate_axes(spec, "smoke", suggested_axes(spec))


def test_map_cli_prints_the_plan_and_rejects_bad_axes(tmp_path):
    from conftest import cli

    ok = cli("labbench", "map", "aa-control", "--profile", "smoke", "--axis", "trainer.max_steps=4", "--no-wandb", "--out", str(tmp_path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 cells x 6 runs = 6 runs" in ok.stdout and "map.md" in ok.stdout and "already stored" not in ok.stdout
    again = cli("labbench", "map", "aa-control", "--profile", "smoke", "--axis", "trainer.max_steps=4,6", "--no-wandb", "--out", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 cells x 6 runs = 12 runs, 6 already stored (reused); about 0.1 min on a 2-core CPU for the rest" in again.stdout
    bad = cli("labbench", "map", "aa-control", "--profile", "smoke", "--axis", "model.dept=2,4", "--out", str(tmp_path / "b"), cwd=tmp_path)
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
