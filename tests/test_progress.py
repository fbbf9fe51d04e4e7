"""Progress where nobody watches a terminal: log lines in stdout and train.log, the rich bar on a terminal."""

from __future__ import annotations

import logging
import math
import re
import sys

import lightning as L
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from torch.utils.data import DataLoader, TensorDataset

from seqlab.errors import ConfigError
from seqlab.progress import LineProgress, duration, progress_bar
from tests.conftest import REPO, write_corpus
from tests.test_scripts import TINY, run_script

LINE = re.compile(r"\]\[seqlab\]\[INFO\] - (epoch \d+/\d+.*)$", re.M)


def fields(line: str) -> dict[str, str]:
    """A progress line, parsed: epoch, batch, loss, the monitored metric and best, lr, rate."""
    pattern = (
        r"epoch (?P<epoch>\d+)/(?P<epochs>\d+)(?P<done> done)?  step (?P<step>\d+)"
        r" \(batch (?P<batch>\d+)/(?P<batches>\d+)\)  loss (?P<loss>\S+)"
        r"  val/ppl (?P<ppl>\S+)( \(best (?P<best>\S+)\))?  lr (?P<lr>\S+)  (?P<rate>[\d,]+) tokens/s"
    )
    match = re.match(pattern, line)
    assert match, f"not a progress line: {line}"
    return match.groupdict()


def test_a_run_without_a_terminal_logs_its_progress_to_stdout_and_train_log(tmp_path):
    write_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    done = run_script(
        "train.py", "data=text", "data.data_dir=corpus", "trainer.max_epochs=2",
        "callbacks.progress_bar.every_seconds=0", f"hydra.run.dir={run}", *TINY, cwd=tmp_path,
    )
    printed = LINE.findall(done.stdout)
    lines = [fields(line) for line in printed]
    ends = [f for f in lines if f["done"]]
    assert [f["epoch"] for f in ends] == ["1", "2"]

    # Every batch has its line (interval 0), numbered within the epoch, the global step counting on.
    batches = int(ends[0]["batches"])
    assert batches > 1 and len(lines) == 2 * batches + 2
    assert [int(f["batch"]) for f in lines[:batches]] == list(range(1, batches + 1))
    assert int(ends[1]["step"]) == 2 * batches
    assert "left epoch" in printed[0] and "run <=" in printed[0] and "took" in printed[batches]
    for f in lines:
        assert math.isfinite(float(f["loss"])) and float(f["lr"]) == pytest.approx(0.02)
        assert float(f["rate"].replace(",", "")) > 0

    # The monitored metric is the one the loggers saw each epoch, and the best is what metrics.json reports.
    logged = pd.read_csv(run / "csv" / "metrics.csv").dropna(subset=["val/ppl"])["val/ppl"].tolist()
    assert [float(f["ppl"]) for f in ends] == pytest.approx(logged[:2], rel=1e-4)
    assert lines[0]["ppl"] == "-" and lines[batches + 1]["ppl"] == ends[0]["ppl"]  # last value seen, until the next
    metrics = pd.read_json(run / "metrics.json", typ="series")
    assert float(ends[1]["best"]) == pytest.approx(metrics["val/ppl"], rel=1e-4)

    # train.log holds the same lines, then the results of the final validation and test.
    log_lines = LINE.findall((run / "train.log").read_text())
    assert log_lines == printed
    assert re.search(r"test: test/acc \S+  test/loss \S+  test/ppl \S+", (run / "train.log").read_text())


class Regression(L.LightningModule):
    """A tiny module that keeps the losses it returned, to check the mean the line shows."""

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"monitor": "val/mse"})
        self.linear = torch.nn.Linear(2, 1)
        self.returned: list[float] = []

    def training_step(self, batch, batch_idx):
        loss = torch.nn.functional.mse_loss(self.linear(batch[0]), batch[1])
        self.returned.append(loss.item())
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/mse", torch.nn.functional.mse_loss(self.linear(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_lines_of_a_plain_module_show_the_loss_it_returned_and_the_best_metric(caplog):
    torch.manual_seed(0)
    x = torch.randn(24, 2)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True) + 1), batch_size=4)
    model, bar = Regression(), LineProgress(every_seconds=0, mode="max")
    trainer = L.Trainer(
        max_epochs=3, accumulate_grad_batches=2, callbacks=[bar], logger=False, enable_checkpointing=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )
    with caplog.at_level(logging.INFO, logger="seqlab"):
        trainer.fit(model, data, data)
    lines = [r.getMessage() for r in caplog.records if r.name == "seqlab"]
    ends = [line for line in lines if " done " in line]
    assert len(lines) == 3 * 6 + 3 and len(ends) == 3
    # Lightning divides the returned loss by accumulate_grad_batches: the line shows it undivided.
    loss = float(re.search(r"loss (\S+)", ends[-1]).group(1))
    assert loss == pytest.approx(sum(model.returned[-6:]) / 6, abs=1e-4)
    # mode=max: the best is the largest value seen (the module's hparams name the metric).
    seen = [float(re.search(r"val/mse (\S+)", line).group(1)) for line in ends]
    assert float(re.search(r"best (\S+)\)", ends[-1]).group(1)) == pytest.approx(max(seen), rel=1e-4)
    assert "tokens/s" not in ends[-1] and "windows/s" not in ends[-1]  # nothing counted: no rate
    assert "left run" in ends[0] and "left" not in ends[-1]


def test_the_factory_keeps_the_rich_bar_for_terminals(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(progress_bar(), RichProgressBar)
    assert isinstance(progress_bar(style="lines"), LineProgress)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert isinstance(progress_bar(), LineProgress)
    assert isinstance(progress_bar(style="rich"), RichProgressBar)
    with pytest.raises(ConfigError, match="style"):
        progress_bar(style="tqdm")
    # The default callbacks use the factory, watching the model's monitored metric.
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=lstm_forecaster", "data=sine"])
    bar = instantiate(cfg.callbacks.progress_bar)
    assert isinstance(bar, LineProgress) and bar.monitor == "val/mse" and bar.every_seconds == 180


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (4.4, 59.6, 452, 17640)] == ["4s", "1m00s", "7m32s", "4h54m"]
