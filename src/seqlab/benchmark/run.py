"""`benchmark(cfg)`: the project's training step against a plain PyTorch loop doing the same work.

The project's side is what `train.py` runs: `LanguageModel` (or `Forecaster`) driven by a `lightning.Trainer`
built from the `trainer` config, fed by the real datamodule (or the same batches of random data); without
validation, checkpoints, loggers or progress bar, which are not part of a step. The plain side
(`plain.py`) runs in a second process, so that neither shares the other's allocator, threads or peak memory.
The two take turns, a round of N steps each, after a warm-up each, so that whatever else the machine is
doing falls on both; only one of them computes at any time.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from seqlab.benchmark import plain
from seqlab.benchmark.flops import forecaster_flops_per_window, lm_flops_per_token
from seqlab.config_schema import check_config
from seqlab.data.stream import TokenStream
from seqlab.errors import ConfigError
from seqlab.models.forecaster import Forecaster
from seqlab.models.language_model import LanguageModel
from seqlab.nn.lstm_forecaster import LSTMForecaster
from seqlab.nn.rnn_lm import RNNLanguageModel
from seqlab.runs import build, log, reported_errors


def benchmark(cfg: DictConfig) -> dict:
    output_dir = Path(cfg.paths.output_dir)
    with reported_errors(output_dir):
        check_config(cfg, groups=("data", "trainer"))  # a bad value stops here, in one line
        bench = settings(cfg)
        if bench["threads"]:
            torch.set_num_threads(bench["threads"])
        L.seed_everything(cfg.seed, verbose=False)
        device = torch.device("cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu")
        if cfg.trainer.accelerator == "auto" and torch.cuda.is_available():
            device = torch.device("cuda")
        project, spec = (lm if bench["task"] == "lm" else forecaster)(cfg, bench, pin=device.type == "cuda")
        spec.update(task=bench["task"], seed=cfg.seed, device=str(device), precision=str(cfg.trainer.precision),
                    threads=bench["threads"], reuse_host_memory=bench["plain_reuses_memory"],
                    peak_size=bench["peak_size"], peak_dtypes=peak_dtypes(device, cfg))
        results = alternate(cfg, bench, project, spec, device)
        table = report(bench, results, device)
        if results["profile"]:
            table += "\n\n" + results["profile"]
        print(table)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "benchmark.md").write_text(table + "\n")
        (output_dir / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n")
        log.info("benchmark.md: %s", output_dir / "benchmark.md")
        return results


def settings(cfg: DictConfig) -> dict:
    """The benchmark's sizes: its preset's, overridden by any benchmark.KEY given."""
    bench = OmegaConf.to_container(cfg.benchmark, resolve=True)
    if bench["task"] not in ("lm", "forecaster"):
        raise ConfigError(f"benchmark.task={bench['task']} is not one of lm, forecaster")
    if bench["size"] not in cfg.presets:
        raise ConfigError(f"benchmark.size={bench['size']} is not one of {', '.join(cfg.presets)}")
    preset = OmegaConf.to_container(cfg.presets[bench["size"]][bench["task"]], resolve=True)
    sizes = {key: bench[key] if bench.get(key) is not None else value for key, value in preset.items()}
    for key in ("warmup", "steps", "rounds", *sizes):
        value = sizes.get(key, bench.get(key))
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"benchmark.{key}={value} must be a positive integer")
    return {**bench, **sizes}


def total_steps(bench: dict) -> int:
    return bench["warmup"] + (bench["rounds"] + bool(bench["profile"])) * bench["steps"]


def peak_dtypes(device: torch.device, cfg: DictConfig) -> list[str]:
    """fp32 always; bf16 on a GPU, or wherever the run is in bf16."""
    bf16 = device.type == "cuda" or str(cfg.trainer.precision).startswith("bf16")
    return ["float32", "bfloat16"] if bf16 else ["float32"]


# --- the two tasks: the project's module and data, and the plain process's spec of the same work ------------
def lm(cfg: DictConfig, bench: dict, pin: bool):
    batch_size, bptt, total = bench["batch_size"], bench["bptt"], total_steps(bench)
    if bench["data_dir"]:
        datamodule = build(cfg.data, data_dir=bench["data_dir"], batch_size=batch_size, bptt=bptt)
        datamodule.prepare_data()
        datamodule.setup("fit")
        tokens, vocab_size = datamodule.corpus.splits["train"], len(datamodule.vocabulary)
        data = f"train split of data={cfg.data.files.train} from {bench['data_dir']}, {tokens.numel():,} tokens"
    else:
        vocab_size = bench["vocab_size"]
        tokens = torch.randint(vocab_size, (batch_size * bptt * total + 1,))
        data = f"random token ids, {tokens.numel():,} tokens"
    stream = TokenStream(tokens, batch_size, bptt)  # the layout of the datamodule's training loader
    loader = DataLoader(stream, batch_size=None, pin_memory=pin)  # as the datamodule's (data/pinned.py)
    fit_data = {"datamodule": datamodule} if bench["data_dir"] else {"train_dataloaders": loader}
    sizes = {k: bench[k] for k in ("embedding_dim", "hidden_dim", "num_layers")}
    recipe = OmegaConf.to_container(cfg.lm, resolve=True)
    optimizer = instantiate(cfg.lm.optimizer)
    net = functools.partial(RNNLanguageModel, **sizes, dropout=recipe["dropout"])
    module = LanguageModel(vocab_size, net=net, optimizer=optimizer)
    flops = lm_flops_per_token(vocab_size, **sizes)
    bench.update(vocab_size=vocab_size, data=data, unit="tokens", items_per_step=batch_size * bptt, flops=flops)
    spec = {"vocab_size": vocab_size, **sizes, "bptt": bptt, "dropout": recipe["dropout"], "optimizer": optimizer,
            "gradient_clip_val": recipe["gradient_clip_val"], "inputs": stream.inputs, "targets": stream.targets}
    return (module, fit_data, recipe["gradient_clip_val"]), spec


def forecaster(cfg: DictConfig, bench: dict, pin: bool):
    recipe = OmegaConf.to_container(cfg.forecaster, resolve=True)
    channels, lookback, horizon = recipe["n_channels"], bench["lookback"], bench["horizon"]
    batch_size = bench["batch_size"]
    shapes = {"n_inputs": channels, "n_outputs": channels, "lookback": lookback, "horizon": horizon}
    sizes = {
        "hidden_dim": bench["hidden_dim"], "num_layers": bench["num_layers"], "dropout": recipe["dropout"],
        "instance_norm": recipe["instance_norm"], "channel_independent": recipe["channel_independent"],
        "segment_length": recipe["segment_length"], "cycle_length": recipe["cycle_length"],
    }
    net = {**shapes, **sizes}
    optimizer = instantiate(cfg.forecaster.optimizer)
    module = Forecaster(**shapes, net=functools.partial(LSTMForecaster, **sizes), loss=recipe["loss"],
                        optimizer=optimizer)
    total = total_steps(bench)
    # One batch per step, all distinct, so the project's run is one epoch like the plain loop's pass.
    batches = [
        (torch.randn(batch_size, lookback, channels), torch.randn(batch_size, horizon, channels),
         torch.randint(0, 8640, (batch_size,)))
        for _ in range(total)
    ]
    flops = forecaster_flops_per_window(channels, lookback, horizon, bench["hidden_dim"], bench["num_layers"],
                                        recipe["segment_length"], recipe["channel_independent"])
    data = f"random windows: {channels} channels, lookback {lookback}, horizon {horizon}"
    bench.update(data=data, unit="windows", items_per_step=batch_size, flops=flops)
    spec = {"net": net, "optimizer": optimizer, "loss": recipe["loss"], "batches": batches,
            "gradient_clip_val": recipe["gradient_clip_val"]}
    fit_data = {"train_dataloaders": DataLoader(batches, batch_size=None, pin_memory=pin)}
    return (module, fit_data, recipe["gradient_clip_val"]), spec


# --- the alternation ----------------------------------------------------------------------------------------
class TakeTurns(L.Callback):
    """Times the project's steps in rounds; between two of its rounds, the plain process runs one of its own.
    With `profile`, one more round of the project's steps runs under torch.profiler, after the timed ones."""

    def __init__(self, warmup: int, steps: int, rounds: int, plain_round, profile: bool) -> None:
        self.warmup, self.steps, self.rounds, self.plain_round = warmup, steps, rounds, plain_round
        self.done, self.started = 0, 0.0
        self.project_seconds: list[float] = []
        self.plain_seconds: list[float] = []
        self.profiler = torch.profiler.profile() if profile else None
        self.memory = 0.0  # MiB, at the end of the timed rounds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.done += 1
        timed = self.done - self.warmup
        if timed < 0 or timed % self.steps or len(self.project_seconds) == self.rounds:
            return
        plain.sync(pl_module.device)
        if timed == 0:
            self.plain_round(self.warmup)  # the plain loop's own warm-up, not timed
        else:
            self.project_seconds.append(time.perf_counter() - self.started)
            self.plain_seconds.append(self.plain_round(self.steps))
            if len(self.project_seconds) == self.rounds:
                self.memory = plain.peak_memory(pl_module.device)  # before the profiler's own
                if self.profiler:
                    self.profiler.start()
        self.started = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.profiler:
            plain.sync(pl_module.device)
            self.profiler.stop()


def alternate(cfg: DictConfig, bench: dict, project, spec: dict, device: torch.device) -> dict:
    module, fit_data, clip = project
    context = multiprocessing.get_context("spawn")
    conn, child_conn = context.Pipe()
    worker = context.Process(target=plain.serve, args=(child_conn, spec), daemon=True)
    worker.start()

    def plain_round(steps: int) -> float:
        conn.send(("round", steps))
        return conn.recv()

    turns = TakeTurns(bench["warmup"], bench["steps"], bench["rounds"], plain_round, bench["profile"])
    trainer = instantiate(
        cfg.trainer, max_steps=total_steps(bench), max_epochs=-1,
        limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=clip, callbacks=[turns], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    load_before = os.getloadavg()[0]
    trainer.fit(module, **fit_data)
    conn.send(("finish", 0))
    plain_memory, peaks = conn.recv(), conn.recv()
    worker.join()
    return {
        **bench,
        "device": str(device), "threads": torch.get_num_threads(), "precision": str(cfg.trainer.precision),
        "load_average": [load_before, os.getloadavg()[0]], "peaks": peaks,
        "project": {"seconds": turns.project_seconds, "memory_mib": turns.memory},
        "plain": {"seconds": turns.plain_seconds, "memory_mib": plain_memory},
        "profile": profile_table(turns.profiler, device, bench["steps"]) if turns.profiler else None,
    }


def profile_table(profiler, device: torch.device, steps: int) -> str:
    """The operators of the profiled round by their own time, most first."""
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = profiler.key_averages().table(sort_by=key, row_limit=20)
    return f"torch.profiler, one round of {steps} project steps:\n{table}"


# --- the table ----------------------------------------------------------------------------------------------
def report(bench: dict, results: dict, device: torch.device) -> str:
    """The table, as Markdown; the figures in it are added to `results` too."""
    dtype = "bfloat16" if results["precision"].startswith("bf16") else "float32"
    peak = results["peaks"][dtype]
    unit, per_step, steps = bench["unit"], bench["items_per_step"], bench["steps"]
    keys = ["embedding_dim", "hidden_dim", "num_layers", "batch_size", "bptt", "vocab_size"] if bench["task"] == "lm" \
        else ["hidden_dim", "num_layers", "batch_size", "lookback", "horizon"]
    sizes = ", ".join(f"{k} {bench[k]}" for k in keys)
    memory = "peak GPU memory allocated" if device.type == "cuda" else "peak RSS of the process"
    lines = [
        f"{bench['task']} {bench['size']}: {sizes}; data: {bench['data']}",
        f"{results['device']}, {results['threads']} threads, precision {results['precision']}; {bench['rounds']} "
        f"rounds of {steps} steps each, alternated, after {bench['warmup']} warm-up steps each (the median round "
        f"counts); load average {results['load_average'][0]:.2f} before, {results['load_average'][1]:.2f} after",
        f"model FLOPs per {unit[:-1]} (training): {bench['flops'] / 1e6:.2f} M; measured matmul peak: "
        + ", ".join(f"{name} {value / 1e9:.1f} GFLOP/s" for name, value in results["peaks"].items())
        + f" ([{bench['peak_size']}]^2 @ [{bench['peak_size']}]^2, best of 5); MFU against {dtype}",
        "",
        f"| loop | {unit}/s | ms/step | ms/step by round (min-max) | {memory} (MiB) | MFU |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rates = {}
    for name, label in (("project", "seqlab (LightningModule + Trainer)"), ("plain", "plain PyTorch loop")):
        seconds = statistics.median(results[name]["seconds"])  # a burst of load elsewhere spoils a round, not all
        rate = per_step * steps / seconds
        rounds = [1e3 * s / steps for s in results[name]["seconds"]]
        rates[name] = (rate, seconds / steps, results[name]["memory_mib"])
        results[name].update(items_per_second=rate, ms_per_step=1e3 * rates[name][1], mfu=bench["flops"] * rate / peak)
        lines.append(f"| {label} | {rate:,.0f} | {1e3 * rates[name][1]:.1f} | {min(rounds):.1f}-{max(rounds):.1f} | "
                     f"{rates[name][2]:,.0f} | {100 * bench['flops'] * rate / peak:.3g}% |")
    (rate, step, mem), (plain_rate, plain_step, plain_mem) = rates["project"], rates["plain"]
    results["ratio"] = rate / plain_rate
    lines.append(f"| seqlab / plain | {rate / plain_rate:.3f} | {step / plain_step:.3f} | | {mem / plain_mem:.2f} | "
                 f"{rate / plain_rate:.3f} |")
    return "\n".join(lines)
