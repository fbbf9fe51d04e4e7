"""compare.py: run folders found, read and ranked side by side; the table, the plots, the script as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seqlab.compare import (
    collect_runs,
    differing_keys,
    failures,
    group_rows,
    numeric_table,
    positional_runs,
    rank_rows,
    ranking_metric,
    shown_metrics,
    text_table,
    validation_curve,
)
from seqlab.errors import ConfigError
from tests.conftest import REPO
from tests.test_scripts import run_script

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(folder: Path, settings: dict | None = None, metrics: dict | None = None, curve: list | None = None):
    """A run folder as train.py leaves it: the resolved config, metrics.json (None: still running), csv/metrics.csv.

    The config names its own folder in several places, as a real one does: none of them is a setting.
    """
    config = OmegaConf.create({
        "task_name": "train", "tags": [folder.name], "group": None, "seed": 1, "ckpt_path": None, "trial": None,
        "data": {"horizon": 96, "path": "ETTh1.csv", "batch_size": 64},
        "model": {"hidden_dim": 256, "loss": "mae", "quantiles": [0.1, 0.9], "monitor": "val/mse"},
        "trainer": {"default_root_dir": str(folder), "max_epochs": 15},
        "callbacks": {"model_checkpoint": {"dirpath": f"{folder}/checkpoints", "monitor": "val/mse"}},
        "logger": {"csv": {"save_dir": str(folder), "name": "csv"}},
        "paths": {"output_dir": str(folder), "log_dir": "./outputs"},
    })
    for key, value in (settings or {}).items():
        OmegaConf.update(config, key, value, force_add=True)
    folder.mkdir(parents=True)
    OmegaConf.save(config, folder / "config.yaml")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps({"epochs": len(curve or []), "wall_seconds": 60.0, **metrics}))
    if curve:
        write_curve(folder, curve, revalidated=metrics is not None)
    return folder


def write_curve(folder: Path, values: list[float], revalidated: bool) -> None:
    """Lightning's CSVLogger layout: a validation row and a training row per epoch, NaN where a metric is not logged;
    after fit, the best checkpoint's re-validation at epoch == epochs trained."""
    lines = ["epoch,step,train/loss,val/mse"]
    for epoch, value in enumerate(values):
        lines += [f"{epoch},{10 * epoch + 9},,{value}", f"{epoch},{10 * epoch + 9},{value + 0.1},"]
    if revalidated:
        lines.append(f"{len(values)},{10 * len(values)},,{min(values)}")
    (folder / "csv").mkdir()
    (folder / "csv" / "metrics.csv").write_text("\n".join(lines) + "\n")


def table_of(paths: list[Path], metric: str | None = None, direction: str = "minimize"):
    runs = collect_runs([str(p) for p in paths])
    metric = ranking_metric(runs, metric)
    metrics = shown_metrics(runs, metric, None)
    rows = rank_rows(group_rows(runs, differing_keys(runs)), metric, direction)
    return rows, numeric_table(rows, metrics), text_table(numeric_table(rows, metrics), metrics)


def test_differing_keys_are_the_settings_that_change_not_the_bookkeeping(tmp_path):
    write_run(tmp_path / "a", {"seed": 1}, {"val/mse": 0.3})
    write_run(tmp_path / "b", {"seed": 2, "data.horizon": 192, "model.hidden_dim": 512}, {"val/mse": 0.4})
    write_run(tmp_path / "c", {"model.cycle_length": 24}, {"val/mse": 0.5})  # a key the others lack
    runs = collect_runs([str(tmp_path)])
    # Folders (paths.*, *_dir, dirpath, save_dir), tags and trial numbers differ in every run: none is a setting.
    assert differing_keys(runs) == ["seed", "data.horizon", "model.hidden_dim", "model.cycle_length"]
    _, _, shown = table_of([tmp_path])
    assert shown["model.cycle_length"].tolist() == ["", "", "24"]  # absent is an empty cell, not "None"
    assert "seed" not in shown.columns  # seeds are what a row averages over


def test_seeds_collapse_into_one_row_with_mean_and_sample_std(tmp_path):
    for seed, (val, test) in enumerate([(0.30, 0.40), (0.34, 0.44), (0.32, 0.42)], start=1):
        write_run(tmp_path / "h96" / str(seed), {"seed": seed}, {"val/mse": val, "test/mse": test, "epochs": 10 + seed})
    settings = {"data.horizon": 192, "model.hidden_dim": 512}
    write_run(tmp_path / "h192" / "1", settings, {"val/mse": 0.5, "test/mse": 0.6})
    rows, numbers, shown = table_of([tmp_path])
    assert list(shown.columns) == [
        "data.horizon", "model.hidden_dim", "runs", "val/mse", "test/mse", "wall_seconds", "epochs", "status", "folder",
    ]
    assert numbers["runs"].tolist() == [3, 1]
    assert numbers["val/mse"][0] == pytest.approx(0.32) and numbers["val/mse std"][0] == pytest.approx(0.02)  # ddof=1
    first = shown.iloc[0]
    assert [first["val/mse"], first["test/mse"], first["epochs"]] == ["0.3200 ± 0.0200", "0.4200 ± 0.0200", "12 ± 1"]
    assert shown.iloc[1][["data.horizon", "model.hidden_dim", "val/mse"]].tolist() == ["192", "512", "0.5000"]
    assert shown["folder"][0] == f"{tmp_path / 'h96'}/{{1,2,3}}"


def test_rows_are_ranked_best_first_in_the_chosen_direction(tmp_path):
    for width, value in [(64, 0.5), (128, 0.2), (256, 0.9)]:
        write_run(tmp_path / str(width), {"model.hidden_dim": width}, {"val/mse": value})
    assert table_of([tmp_path])[1]["val/mse"].tolist() == [0.2, 0.5, 0.9]
    assert table_of([tmp_path], direction="maximize")[1]["val/mse"].tolist() == [0.9, 0.5, 0.2]


def test_failed_pruned_and_unfinished_runs_come_last_with_their_status(tmp_path):
    write_run(tmp_path / "unfinished", {"model.hidden_dim": 8}, None, curve=[1.0])
    write_run(tmp_path / "failed", {"seed": 2}, {"status": "failed", "error": "CUDA out of memory"})
    write_run(tmp_path / "pruned", {"model.hidden_dim": 16}, {"status": "pruned", "val/mse": 0.1})
    write_run(tmp_path / "completed", {"seed": 1}, {"val/mse": 0.9})  # no status: written before statuses were
    rows, numbers, shown = table_of([tmp_path])
    assert shown["status"].tolist() == ["completed", "pruned", "failed", "unfinished"]
    assert numbers["runs"].tolist() == [1, 1, 1, 1]  # the failed seed is not averaged into its setting's row
    assert shown["val/mse"].tolist() == ["0.9000", "0.1000", "", ""]
    assert failures(rows) == [f"- {tmp_path / 'failed'}: CUDA out of memory"]


def test_unreadable_folders_are_named_on_stderr_and_the_rest_reported(tmp_path, capsys):
    write_run(tmp_path / "sweep" / "good", {}, {"val/mse": 0.3})
    (write_run(tmp_path / "sweep" / "bad_json", {}, {}) / "metrics.json").write_text("{not json")
    (write_run(tmp_path / "sweep" / "bad_yaml", {}, {}) / "config.yaml").write_text("model: [unclosed\n")
    runs = collect_runs([str(tmp_path / "sweep"), str(tmp_path / "nowhere")])
    assert [run.folder.name for run in runs] == ["good"]
    skipped = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in skipped] == [
        f"skipped {tmp_path / 'sweep' / 'bad_json'}", f"skipped {tmp_path / 'sweep' / 'bad_yaml'}",
        f"skipped {tmp_path / 'nowhere'}",
    ]
    assert "metrics.json" in skipped[0] and "config.yaml" in skipped[1] and "no such folder" in skipped[2]


def test_the_ranking_metric_is_the_runs_monitor_unless_they_disagree(tmp_path):
    write_run(tmp_path / "lm", {"model.monitor": "val/ppl"}, {"val/ppl": 120.0, "test/ppl": 115.0})
    assert shown_metrics(collect_runs([str(tmp_path)]), "val/ppl", None) == ["val/ppl", "test/ppl"]
    write_run(tmp_path / "forecaster", {}, {"val/mse": 0.3})
    runs = collect_runs([str(tmp_path)])
    with pytest.raises(ConfigError, match="different metrics .*metric="):
        ranking_metric(runs, None)
    assert ranking_metric(runs, "val/ppl") == "val/ppl"


def test_hydra_and_wandb_configs_inside_a_run_folder_are_not_runs(tmp_path):
    run = write_run(tmp_path / "sweep" / "trials" / "000", {}, {"val/mse": 0.3})
    for inner in (run / ".hydra", run / "wandb" / "run-1" / "files"):
        inner.mkdir(parents=True)
        (inner / "config.yaml").write_text("a: 1\n")
    (tmp_path / "sweep" / "config.yaml").write_text("a: 1\n")  # a sweep folder with a config of its own
    assert [r.folder for r in collect_runs([str(tmp_path / "sweep"), str(run)])] == [run]  # and counted once


def test_the_validation_curve_leaves_out_the_revalidation_after_fit(tmp_path):
    (run,) = collect_runs([str(write_run(tmp_path / "run", {}, {"val/mse": 0.8}, curve=[1.0, 0.8, 0.9]))])
    curve = validation_curve(run, "val/mse")
    assert curve.index.tolist() == [1.0, 2.0, 3.0] and curve.tolist() == [1.0, 0.8, 0.9]


def test_the_readme_benchmark_gives_one_row_per_horizon(tmp_path):
    """`compare.py outputs/bench/issue20/final/etth1`: 4 horizons x 3 seeds of one recipe; the horizon is the one
    setting shown, however many keys the configs share (paths and tags, which differ, are bookkeeping)."""
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for letter, horizon in zip("ABCD", (720, 192, 96, 336)):
            for seed in (1, 2, 3):
                folder = tmp_path / "etth1_ema" / letter / str(seed)
                overrides = [f"experiment=etth1_h{horizon}", f"seed={seed}", "data.path=ETTh1.csv", "logger=csv",
                             "callbacks.progress_bar=null", f"paths.output_dir={folder}"]
                folder.mkdir(parents=True)
                OmegaConf.save(compose("train", overrides=overrides), folder / "config.yaml", resolve=True)
                metrics = {"val/mse": horizon / 1000 + seed / 1e4, "test/mse": 0.4}
                (folder / "metrics.json").write_text(json.dumps(metrics))
    rows, numbers, shown = table_of([tmp_path / "etth1_ema"])
    assert numbers["data.horizon"].tolist() == ["96", "192", "336", "720"] and numbers["runs"].tolist() == [3, 3, 3, 3]
    assert shown["val/mse"][0] == "0.0962 ± 0.0001"
    settings = [c for c in shown.columns if "." in c]
    assert settings == ["data.horizon"]


def test_positional_folders_become_the_runs_override(tmp_path, monkeypatch):
    assert positional_runs(["a", "b c", "metric=val/mse"]) == ["runs=['a','b c']", "metric=val/mse"]
    assert positional_runs(["--cfg", "job"]) == ["--cfg", "job"]  # `job` belongs to the flag
    assert positional_runs(["metric=val/mse", "a"]) == ["metric=val/mse", "a"]  # leading only
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seed=1").mkdir()  # a Hydra multirun job folder: a folder, though it looks like an override
    assert positional_runs(["seed=1", "seed=2"]) == ["runs=['seed=1']", "seed=2"]


def test_the_script_writes_its_report_and_reads_only(tmp_path):
    for seed in (1, 2):
        write_run(tmp_path / "sweep_a" / str(seed), {"seed": seed}, {"val/mse": 0.3 + seed / 100}, curve=[0.5, 0.3])
    write_run(tmp_path / "sweep_b" / "0", {"model.hidden_dim": 512}, {"val/mse": 0.2}, curve=[0.4, 0.2])
    write_run(tmp_path / "sweep_b" / "1", {"model.hidden_dim": 1024}, {"status": "failed", "error": "out of memory"})
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    done = run_script("compare.py", "sweep_a", "sweep_b", "out=report", cwd=tmp_path)
    assert "| 512 | 1 | 0.2000 | 60 | 2 | completed | sweep_b/0 |" in done.stdout
    assert "| 256 | 2 | 0.3150 ± 0.0071 | 60 ± 0 | 2 ± 0 | completed | sweep_a/{1,2} |" in done.stdout
    assert "- sweep_b/1: out of memory" in done.stdout
    report = tmp_path / "report"
    expected = {"runs.md", "compare.csv", "curves.png", "metric_vs_model.hidden_dim.png"}
    assert expected <= {p.name for p in report.iterdir()}
    for png in ("curves.png", "metric_vs_model.hidden_dim.png"):
        assert (report / png).read_bytes()[:8] == PNG_SIGNATURE and (report / png).stat().st_size > 1000
    outside_report = [p for p in tmp_path.rglob("*") if report not in p.parents and p != report]
    assert sorted((p, p.stat().st_mtime_ns) for p in outside_report) == before  # it wrote nothing into the PATHs

    missing = run_script("compare.py", "nowhere", cwd=tmp_path, check=False)
    assert missing.returncode == 2
    assert [line for line in missing.stderr.splitlines() if line.startswith("error:")] == [
        "error: no run could be read in nowhere (the lines above say why)"
    ]
    assert not any((tmp_path / "outputs" / "compare").iterdir())  # the report folder it had begun is gone again
