"""Sweeps as their users read them: TensorBoard's HParams view over a multirun, and W&B groups and summaries."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2

from tests.conftest import REPO, write_corpus
from tests.servers import free_port, get_json, http_server, post_json, wait_for
from tests.test_scripts import TINY, run_script

SMALL = [o for o in TINY if not o.startswith("model.net.hidden_dim=")]  # the sweeps below choose the hidden size


@pytest.fixture(scope="module")
def tensorboard_sweep(tmp_path_factory) -> Path:
    """A Hydra multirun of two jobs (hidden size 8 and 16), two epochs each: the sweep folder."""
    work = tmp_path_factory.mktemp("tb-sweep")
    write_corpus(work / "corpus")
    run_script(
        "train.py", "-m", "data=text", "data.data_dir=corpus", "trainer.max_epochs=2", "model.net.hidden_dim=8,16",
        f"hydra.sweep.dir={work / 'sweep'}", *SMALL, cwd=work,
    )
    return work / "sweep"


def test_tensorboard_shows_the_sweep_in_its_hparams_view(tensorboard_sweep):
    with tensorboard(tensorboard_sweep) as url:
        groups = wait_for(lambda: session_groups(url), until=lambda found: len(found) == 2)
        experiment = post_json(f"{url}/data/plugin/hparams/experiment", {"experimentName": ""})
        runs = get_json(f"{url}/data/runs")
        query = urllib.parse.urlencode({"run": "0/tensorboard", "tag": "val/ppl"})
        curve = get_json(f"{url}/data/plugin/scalars/scalars?{query}")

    assert sorted(runs) == ["0/tensorboard", "1/tensorboard"]
    metrics0 = json.loads((tensorboard_sweep / "0" / "metrics.json").read_text())
    # [wall time, step, value], one per epoch; the best is the one reported (not validated again after fit)
    assert len(curve) == 2 and min(point[2] for point in curve) == pytest.approx(metrics0["val/ppl"])

    settings = {info["name"] for info in experiment["hparamInfos"]}
    assert {"model.net.hidden_dim", "model.optimizer.lr", "data.bptt", "trainer.max_epochs", "seed"} <= settings
    leaked = [n for n in settings if n.split(".")[0] in {"paths", "hydra", "callbacks", "logger"} or "_target_" in n
              or n.endswith(("_dir", ".files.train"))]
    assert not leaked
    assert {"best/val/ppl", "test/ppl"} <= {info["name"]["tag"] for info in experiment["metricInfos"]}

    hidden_sizes = set()
    for group in groups:
        [session] = group["sessions"]
        metrics = json.loads((tensorboard_sweep / session["name"].split("/")[0] / "metrics.json").read_text())
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert math.isfinite(values["best/val/ppl"]) and values["best/val/ppl"] == pytest.approx(metrics["val/ppl"])
        assert values["test/ppl"] == pytest.approx(metrics["test/ppl"])
        hidden_sizes.add(group["hparams"]["model.net.hidden_dim"])
    assert hidden_sizes == {8, 16}


def test_wandb_runs_of_a_multirun_share_its_group(tmp_path):
    write_corpus(tmp_path / "corpus")
    run_script(
        "train.py", "-m", "data=text", "data.data_dir=corpus", "logger=wandb", "trainer.max_epochs=1",
        "model.net.hidden_dim=8,16", f"hydra.sweep.dir={tmp_path / 'lr-sweep'}", *SMALL, cwd=tmp_path,
    )
    for job in ("0", "1"):
        [run] = offline_wandb_runs(tmp_path / "lr-sweep" / job)  # one W&B run per job: the first was finished
        records = wandb_records(run)
        assert (records["run"].run_group, records["run"].job_type) == ("lr-sweep", "train")
        metrics = json.loads((tmp_path / "lr-sweep" / job / "metrics.json").read_text())
        assert records["summary"]["best/val/ppl"] == pytest.approx(metrics["val/ppl"])
        assert records["summary"]["test/ppl"] == pytest.approx(metrics["test/ppl"])


def test_wandb_without_an_api_key_or_a_terminal_logs_offline(tmp_path):
    """wandb alone stops such a run ("No API key configured") once the data is loaded; seqlab says so, goes offline."""
    write_corpus(tmp_path / "corpus")
    unset = {"WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC"}  # and HOME (~/.netrc) is empty
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HOME=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"), OMP_NUM_THREADS="1",
               SEQLAB_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, str(REPO / "scripts" / "train.py"), "data=text", "data.data_dir=corpus", "logger=wandb",
               "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}", *TINY]
    done = subprocess.run(command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (done.stdout + done.stderr).count("no API key and no terminal to ask for one") == 1
    [run] = offline_wandb_runs(tmp_path / "run")
    assert "best/val/ppl" in wandb_records(run)["summary"]


# --- reading W&B offline runs ------------------------------------------------------------------------------------


def offline_wandb_runs(run_folder: Path) -> list[Path]:
    return sorted((run_folder / "wandb").glob("offline-run-*/run-*.wandb"))


def wandb_records(path: Path) -> dict:
    """The run record and the final summary of an offline `.wandb` file, parsed with wandb's own protobufs.

    The file is a LevelDB-style log (wandb's `datastore`): a 7-byte `:W&B` header, then 32 KiB blocks of chunks
    (crc32 4 bytes, length 2 bytes little-endian, type 1 byte: 1 full, 2 first, 3 middle, 4 last).
    """
    found: dict = {"summary": {}}
    for record in _records(path.read_bytes()):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["run"] = record.run
        elif kind == "summary":
            for item in record.summary.update:
                found["summary"][item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
    return found


def _records(data: bytes) -> Iterator[wandb_internal_pb2.Record]:
    assert data[:4] == b":W&B", "not a W&B transaction log"
    position, pending = 7, b""
    while position + 7 <= len(data):
        room = 32768 - position % 32768
        if room < 7:  # a block's tail too short for a chunk header is padding
            position += room
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        chunk, position = data[position + 7:position + 7 + length], position + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(pending)


# --- a TensorBoard server and its HTTP API ------------------------------------------------------------------------


def tensorboard(logdir: Path):
    """A TensorBoard server over `logdir` on a free port, stopped however the test ends."""
    port = free_port()
    return http_server(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
         "--load_fast", "false", "--reload_interval", "1"],
        "/data/runs", port,
    )


def session_groups(url: str) -> list[dict]:
    """Every session group (run) with its hparams and metric values, as the HParams table asks for them."""
    request = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": "model.net.hidden_dim"}, {"metric": {"tag": "best/val/ppl"}}],
        "startIndex": 0,
        "sliceSize": 100,
    }
    return post_json(f"{url}/data/plugin/hparams/session_groups", request).get("sessionGroups", [])
