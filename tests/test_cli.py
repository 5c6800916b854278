"""labbench-train honours Hydra's standard flags and reports bad input clearly."""

from __future__ import annotations

import yaml

from conftest import cli
from labbench.record import read_record


def test_help_lists_the_config_groups(tmp_path):
    proc = cli("labbench-train", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for group in ("data", "model", "optimizer", "init", "norm", "activation", "schedule", "loss", "trainer", "logger"):
        assert f"{group}:" in proc.stdout
    assert "kaiming_normal" in proc.stdout and "mnist5k" in proc.stdout


def test_cfg_job_prints_the_composed_config(tmp_path):
    proc = cli("labbench-train", "--cfg", "job", "optimizer=sgd", "optimizer.lr=0.3", "seed=7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["optimizer"]["_target_"] == "torch.optim.SGD" and cfg["optimizer"]["lr"] == 0.3
    assert cfg["seed"] == 7 and cfg["data"]["order_seed"] == "${seed}"
    assert not (tmp_path / "outputs").exists()  # printing the config runs nothing


def test_info_works(tmp_path):
    proc = cli("labbench-train", "--info", cwd=tmp_path)
    assert proc.returncode == 0 and "labbench.conf" in proc.stdout


def test_unknown_option_names_the_valid_ones(tmp_path):
    proc = cli("labbench-train", "optimizer=adamm", cwd=tmp_path)
    assert proc.returncode != 0
    assert "optimizer/adamm" in proc.stderr
    for valid in ("adam", "adamw", "sgd", "rmsprop", "adagrad"):
        assert valid in proc.stderr


def test_multirun_writes_one_record_per_job_in_run_id_folders(tmp_path):
    proc = cli(
        "labbench-train", "-m", "data=synthetic", "seed=0,1", "init=xavier_normal,kaiming_normal",
        "logger=csv", "trainer.max_steps=10", "trainer.enable_progress_bar=false", cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [read_record(p.parent) for p in (tmp_path / "outputs" / "multirun").rglob("run.json")]
    assert len(records) == 4
    assert {r["status"] for r in records} == {"completed"}
    assert len({r["run_id"] for r in records}) == 4
    assert {(r["config"]["seed"], r["config"]["init"]["scheme"]) for r in records} == {
        (0, "xavier_normal"), (0, "kaiming_normal"), (1, "xavier_normal"), (1, "kaiming_normal"),
    }
    assert all(p.name == read_record(p)["run_id"] for p in (r_dir.parent for r_dir in (tmp_path / "outputs").rglob("run.json")))


def test_an_80_column_terminal_gets_whole_numbers_whole_yaml_and_a_short_list(tmp_path):
    """Issue 27, item 3: nothing the user reads or copies is cut or broken mid-token at 80 columns."""
    listing = cli("labbench", "list", cwd=tmp_path, env={"COLUMNS": "80"})
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) < 250  # one block per spec, not a 1,000-line table
    assert "zero-init-symmetry (B9): quick" in listing.stdout and "settings: mlp-mnist, tanh-mnist1d" in listing.stdout
    show = cli("labbench", "show", "xavier-vs-kaiming", "--setting", "mlp-mnist", "--profile", "smoke", cwd=tmp_path, env={"COLUMNS": "80"})
    assert show.returncode == 0 and any(line.strip() == "_target_: labbench.models.MLP" for line in show.stdout.splitlines())
    assert "labbench.models.…" not in show.stdout


def test_the_verdict_table_keeps_every_number_whole_on_a_narrow_terminal():
    from rich.console import Console

    import labbench.cli as cli_module

    h = {"name": "a long hypothesis name that needs wrapping on a narrow terminal", "metric": "train/loss@0:200:noise",
         "better": "large-fixed", "worse": "small-fixed", "direction": "lower", "margin": 0.0, "n": 8, "mean_diff": -0.001281,
         "ci_low": -0.0021234, "ci_high": -0.000412, "prob_improvement": 0.25, "p_holm": 0.0078125, "verdict": "contradicted"}
    verdict = {"name": "batch-size", "profile": "quick", "hypotheses": [{**h, "role": "primary"}]}
    for width in (80, 200):
        console = Console(width=width, record=True, color_system=None)
        saved, cli_module.console = cli_module.console, console
        try:
            console.print(cli_module._verdict_table(verdict))
        finally:
            cli_module.console = saved
        text = console.export_text()
        assert "-0.001281" in text and "0.00781" in text, (width, text)
        assert "[primary]" in text  # escaped: not swallowed as rich markup


def test_validate_warns_and_reproduce_refuses_when_a_profiles_data_files_are_absent(tmp_path, monkeypatch, capsys):
    """Issue 27, item 10: `validate --profile full` named nothing when MNIST was missing; the first run failed later."""
    from helpers_torchvision_files import write_cifar10, write_mnist
    from labbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABBENCH_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("LABBENCH_OUTPUT_DIR", str(tmp_path / "outputs"))
    assert main(["validate", "cnn-vs-mlp", "--profile", "full"]) == 0  # a warning, not an error: validated where it won't run
    said = capsys.readouterr().out
    assert "warning (full): its runs need data files absent here: MNIST not found" in " ".join(said.split())
    assert main(["reproduce", "cnn-vs-mlp", "--profile", "full", "--no-wandb"]) == 2
    refused = " ".join(capsys.readouterr().out.split())
    assert "MNIST not found" in refused and "Nothing was run." in refused
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("run.json"))
    write_mnist(tmp_path / "nowhere")
    write_cifar10(tmp_path / "nowhere")  # its second setting's full profile runs on CIFAR-10
    assert main(["validate", "cnn-vs-mlp", "--profile", "full"]) == 0
    assert "absent here" not in capsys.readouterr().out


def test_a_progress_bar_grows_by_the_runs_tuning_extend_adds():
    """``labbench reproduce`` and ``map`` count the declared grid up front; runs past its edge raise the total."""
    from rich.progress import Progress

    from labbench.cli import _grow

    with Progress(disable=True) as progress:
        progress.add_task("other", total=3)
        task = progress.add_task("runs", total=10)
        _grow(progress, task, 4)
        assert [t.total for t in progress.tasks] == [3, 14]  # this bar's, not the first one's
