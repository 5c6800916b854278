"""scripts/bench.py in smoke mode: a well-formed result, the same numerics in both loops (no speed asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.integration  # a slow end-to-end run (CI and -m integration; the default tier keeps its budget)
def test_bench_smoke_writes_a_well_formed_result(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--smoke", "--workloads", "mlp-digits",
                             "char-transformer", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["smoke"] is True and payload["machine"]["cores"] >= 1
    assert [r["workload"] for r in payload["results"]] == ["mlp-digits", "char-transformer"]
    for r in payload["results"]:
        assert r["labbench_s"] > 0 and r["hand_s"] > 0 and abs(r["ratio"] - r["labbench_s"] / r["hand_s"]) < 0.02 * r["ratio"]
        assert r["losses_compared"] == 10 and r["loss_max_rel_diff"] < 1e-5  # the same steps, the same losses
        assert r["lightning_s"] > 0 and abs(r["labbench_over_lightning"] - r["labbench_s"] / r["lightning_s"]) < 0.02 * r["labbench_over_lightning"]
        assert r["peak_rss_mb"] > 100 and r["start_to_first_step_s"] > 0
    assert "ratio" in result.stdout
    augment = payload["augmentation"]
    assert augment["images"] == 64 and augment["batched_images_per_s"] > 0 and augment["torchvision_per_image_images_per_s"] > 0
