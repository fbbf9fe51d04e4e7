"""The W&B sweep spec: one trial, built the way `wandb agent` builds it, runs `scripts/train.py` to the end.

No W&B server is reachable here, so the controller's part (choosing values) is played by `sample`; the agent's
part (turning values into a command line) is wandb's own code, `wandb.sdk.launch.sweeps.utils`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wandb.sdk.launch.sweeps import utils as sweep_utils

from tests.conftest import REPO, write_corpus
from tests.test_reporting import offline_wandb_runs, wandb_records

SPEC = REPO / "sweeps" / "wandb_lm.yaml"


def sample(parameter: dict) -> object:
    """One value the controller could send: the first of `values`, or a point 30 % of the way through a range."""
    if "value" in parameter:
        return parameter["value"]
    if "values" in parameter:
        return parameter["values"][0]
    low, high = parameter["min"], parameter["max"]
    if parameter["distribution"] == "log_uniform_values":
        return low * (high / low) ** 0.3  # a float with all its digits: how the agent prints it matters
    return low + (high - low) * 0.3


def agent_command(spec: dict, values: dict) -> list[str]:
    """The argument list `wandb agent` runs for one trial (the macro expansion of `Agent._command_run`)."""
    sweep_vars = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    sweep_vars["interpreter"] = ["python"]
    sweep_vars["program"] = [spec["program"]]
    if platform.system() != "Windows":
        sweep_vars["env"] = ["/usr/bin/env"]
    command = []
    for chunk in map(str, sweep_utils.create_sweep_command(list(spec["command"]))):
        is_macro = chunk.startswith("${") and chunk.endswith("}")
        command += (sweep_vars.get(chunk[2:-1]) or []) if is_macro else [chunk]
    return command


def test_the_spec_is_a_bayes_search_of_the_metric_each_run_reports():
    spec = yaml.safe_load(SPEC.read_text())
    assert spec["method"] == "bayes" and spec["metric"] == {"name": "best/val/ppl", "goal": "minimize"}
    assert spec["parameters"]["logger"] == {"value": "wandb"}
    assert spec["command"] == ["${env}", "python", "${program}", "${args_no_hyphens}"]


def test_a_trial_built_by_the_agent_runs_to_the_end(tmp_path):
    spec = yaml.safe_load(SPEC.read_text())
    values = {name: sample(parameter) for name, parameter in spec["parameters"].items()}
    # The spec's own data and length, swapped for a tiny corpus and one epoch; every other value as sampled.
    values.update({"data": "text", "data.data_dir": str(write_corpus(tmp_path / "corpus")), "trainer.max_epochs": 1})
    command = agent_command(spec, values)
    assert command[:3] == ["/usr/bin/env", "python", "scripts/train.py"]
    assert f"model.optimizer.lr={values['model.optimizer.lr']}" in command  # str(float): Hydra reads it back exactly

    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # `python` is this interpreter
        "WANDB_MODE": "offline", "SEQLAB_ROOT": str(tmp_path), "SEQLAB_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1",
    }
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # the agent's cwd
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    [run] = (tmp_path / "outputs" / "train" / "runs").iterdir()  # SEQLAB_ROOT: the run folder is not in the repo
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["optimizer"]["lr"] == values["model.optimizer.lr"]
    assert config["model"]["net"]["dropout"] == values["model.net.dropout"]
    assert config["model"]["net"]["hidden_dim"] == values["model.net.hidden_dim"]
    metrics = json.loads((run / "metrics.json").read_text())
    [wandb_run] = offline_wandb_runs(run)
    summary = wandb_records(wandb_run)["summary"]
    assert summary[spec["metric"]["name"]] == pytest.approx(metrics["val/ppl"], rel=1e-5)
