"""The long-range memory report: which cell remembers across how many steps, from the runs of an experiment=long_range sweep.

    python scripts/train.py -m experiment=long_range data.task=adding     # the experiment's grid: 45 runs
    python benchmarks/long_range_report.py outputs/train/multiruns/DATE_TIME --out outputs/long_range_report

reads every run folder below the folders given (its config.yaml and metrics.json; runs that did not complete are
named on stderr and left out) and writes, per task found, to --out:

- long_range_<task>.md: rows T (data.gap), columns cell, mean ± std over seeds of the test score (adding: test
  MSE, next to the always-1.0 baseline's; copy: accuracy on the 10 recalled symbols, chance 1/8);
- long_range_<task>.png: that score against T, one line per cell, the baseline dashed;
- long_range_<task>_gradients_T<gap>.png: ||d loss / d h_t|| against t (log scale), one line per cell, mean over
  seeds, from each run's gradient_norms.json, for one T (--gap; default the largest).

It never writes into the folders it reads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure  # not pyplot: no screen, no global figure registry

CELL_ORDER = ("rnn", "gru", "lstm")
# Per task: the test score, its name, and the baseline's score (a metric of the run, or a constant).
SCORES = {
    "adding": {"metric": "test/mse", "label": "test MSE", "baseline": "test/baseline_mse", "better": "lower"},
    "copy": {"metric": "test/acc", "label": "test accuracy, recalled symbols", "baseline": 1 / 8, "better": "higher"},
}


def find_runs(folders: list[Path]) -> tuple[list[dict], list[Path]]:
    """Every completed long_range run below `folders` (task, gap, cell, seed, metrics, gradient norms), and the
    run folders left out because they did not complete."""
    runs, skipped = [], []
    for folder in folders:
        for metrics_file in sorted(folder.rglob("metrics.json")):
            run = metrics_file.parent
            config_file = run / "config.yaml"
            if not config_file.is_file():
                continue
            config = yaml.safe_load(config_file.read_text())
            if not str(config.get("data", {}).get("_target_", "")).endswith("LongRangeDataModule"):
                continue
            metrics = json.loads(metrics_file.read_text())
            task = config["data"]["task"]
            if metrics.get("status") != "completed" or SCORES[task]["metric"] not in metrics:  # failed, or test=false
                skipped.append(run)
                continue
            gradients = run / "gradient_norms.json"
            runs.append({
                "folder": run, "task": task, "gap": int(config["data"]["gap"]),
                "cell": config["model"]["net"]["cell"], "seed": config.get("seed"), "metrics": metrics,
                "norms": json.loads(gradients.read_text())["norms"] if gradients.is_file() else None,
            })
    return runs, skipped


def cells_of(runs: list[dict]) -> list[str]:
    found = {r["cell"] for r in runs}
    return [c for c in CELL_ORDER if c in found] + sorted(found - set(CELL_ORDER))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single run)."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def baseline_of(run: dict, task: str) -> float:
    baseline = SCORES[task]["baseline"]
    return float(run["metrics"][baseline]) if isinstance(baseline, str) else baseline


def table(runs: list[dict], task: str) -> str:
    """Markdown: rows T, columns cell, `mean ± std (n)` over seeds; the baseline in the last column."""
    score, cells = SCORES[task], cells_of(runs)
    lines = [
        f"## {task}: {score['label']} ({score['better']} is better), mean ± std over seeds (runs)",
        "",
        "| T | " + " | ".join(cells) + " | baseline |",
        "|---|" + "---|" * (len(cells) + 1),
    ]
    for gap in sorted({r["gap"] for r in runs}):
        at_gap = [r for r in runs if r["gap"] == gap]
        row = [str(gap)]
        for cell in cells:
            values = [r["metrics"][score["metric"]] for r in at_gap if r["cell"] == cell]
            if values:
                mean, std = mean_std(values)
                row.append(f"{mean:.4f} ± {std:.4f} ({len(values)})")
            else:
                row.append("–")
        row.append(f"{mean_std([baseline_of(r, task) for r in at_gap])[0]:.4f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def score_figure(runs: list[dict], task: str) -> Figure:
    """The test score against T, one line per cell with its std over seeds, and the baseline dashed."""
    score = SCORES[task]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    gaps = sorted({r["gap"] for r in runs})
    for cell in cells_of(runs):
        points = [(g, mean_std([r["metrics"][score["metric"]] for r in runs if r["gap"] == g and r["cell"] == cell]))
                  for g in gaps if any(r["gap"] == g and r["cell"] == cell for r in runs)]
        ax.errorbar([g for g, _ in points], [m for _, (m, _) in points], yerr=[s for _, (_, s) in points],
                    marker="o", capsize=3, label=cell)
    baselines = [mean_std([baseline_of(r, task) for r in runs if r["gap"] == g])[0] for g in gaps]
    ax.plot(gaps, baselines, "k--", label="baseline")
    ax.set(xscale="log", xlabel="T (data.gap)", ylabel=score["label"], title=f"{task}: remembering across T steps")
    ax.legend()
    fig.tight_layout()
    return fig


def gradient_figure(runs: list[dict], task: str, gap: int) -> Figure | None:
    """||d loss / d h_t|| against t for one T, one line per cell (mean over seeds); None without gradient files."""
    chosen = [r for r in runs if r["gap"] == gap and r["norms"] is not None]
    if not chosen:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for cell in cells_of(chosen):
        norms = np.mean([r["norms"] for r in chosen if r["cell"] == cell], axis=0)
        ax.plot(np.arange(len(norms)), norms, label=f"{cell} ({sum(r['cell'] == cell for r in chosen)} seeds)")
    ax.set(yscale="log", xlabel="time step t", ylabel="mean ||d loss / d h_t||",
           title=f"{task}, T={gap}: gradient reaching each step (trained)")
    ax.legend()
    fig.tight_layout()
    return fig


def report(folders: list[Path], out: Path, gap: int | None = None) -> list[Path]:
    """Write the tables and figures of every task found; the paths written."""
    runs, skipped = find_runs(folders)
    if not runs:
        raise SystemExit(f"error: no completed experiment=long_range run below {', '.join(map(str, folders))}")
    for run in skipped:
        print(f"left out (not completed, or not tested): {run}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task in sorted({r["task"] for r in runs}):
        of_task = [r for r in runs if r["task"] == task]
        (out / f"long_range_{task}.md").write_text(table(of_task, task))
        score_figure(of_task, task).savefig(out / f"long_range_{task}.png", dpi=120)
        written += [out / f"long_range_{task}.md", out / f"long_range_{task}.png"]
        shown_gap = gap if gap is not None else max(r["gap"] for r in of_task)
        figure = gradient_figure(of_task, task, shown_gap)
        if figure is not None:
            path = out / f"long_range_{task}_gradients_T{shown_gap}.png"
            figure.savefig(path, dpi=120)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="multirun folders or run folders")
    parser.add_argument("--out", type=Path, default=Path("outputs/long_range_report"))
    parser.add_argument("--gap", type=int, default=None, help="the T of the gradient figure (default: the largest)")
    args = parser.parse_args()
    for path in report(args.folders, args.out, args.gap):
        print(path)


if __name__ == "__main__":
    main()
