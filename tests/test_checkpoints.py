"""A checkpoint is data: one that names anything but seqlab's own classes is refused before anything is called."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from seqlab.checkpoints import load_trained, load_with_data
from seqlab.errors import CheckpointError
from tests.test_scripts import TINY, run_script


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> dict:
    """The contents of a real checkpoint from a one-epoch run."""
    from tests.conftest import write_corpus

    work = tmp_path_factory.mktemp("ckpt")
    write_corpus(work / "corpus")
    run_script("train.py", "data=text", "data.data_dir=corpus", "trainer.max_epochs=1", f"hydra.run.dir={work / 'run'}",
               *TINY, cwd=work)
    contents = torch.load(work / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    contents["seqlab_config"]["data"]["data_dir"] = str(work / "corpus")  # found from any folder
    return contents


def crafted(checkpoint: dict, folder: Path, edit) -> Path:
    """A copy of `checkpoint` changed by `edit`, saved as a file."""
    contents = copy.deepcopy(checkpoint)
    edit(contents)
    path = folder / "crafted.ckpt"
    torch.save(contents, path)
    return path


def opener(victim: Path) -> dict:
    return {"_target_": "builtins.open", "file": str(victim), "mode": "w"}


def test_an_untouched_checkpoint_loads(checkpoint, tmp_path):
    model, config = load_trained(str(crafted(checkpoint, tmp_path, lambda c: None)))
    assert config["model"]["_target_"].endswith("LanguageModel") and model.vocabulary


@pytest.mark.parametrize(
    "place, edit",
    [
        ("a nested data setting", lambda c, v: c["seqlab_config"]["data"]["files"].update(train=opener(v))),
        ("the data's target", lambda c, v: c["seqlab_config"].update(data=opener(v))),
        ("the model's target", lambda c, v: c["seqlab_config"].update(model=opener(v))),
        ("a hyperparameter", lambda c, v: c["hyper_parameters"].update(loss_scale=opener(v))),
        ("the net's target", lambda c, v: c["seqlab_config"]["model"].update(net=opener(v))),
        ("a net setting", lambda c, v: c["seqlab_config"]["model"]["net"].update(cell=opener(v))),
        ("Lightning's instantiator", lambda c, v: c["hyper_parameters"].update(_instantiator="builtins.print")),
        ("a Hydra positional argument", lambda c, v: c["seqlab_config"]["data"].update(_args_=[str(v)])),
        ("an interpolation", lambda c, v: c["seqlab_config"]["data"].update(data_dir="${oc.env:HOME}")),
    ],
)
def test_a_checkpoint_naming_anything_else_is_refused_before_it_is_called(checkpoint, tmp_path, place, edit):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = crafted(checkpoint, tmp_path, lambda c: edit(c, victim))
    with pytest.raises(CheckpointError, match="is refused"):
        load_with_data(str(path), cache_dir=str(tmp_path / "cache"))
    assert victim.read_text() == "precious", place


def test_eval_of_a_crafted_checkpoint_is_one_line_and_leaves_the_file_alone(checkpoint, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = crafted(checkpoint, tmp_path, lambda c: c["seqlab_config"]["data"].update(cache_dir=opener(victim)))
    done = run_script("eval.py", f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {path} is refused: its data holds cache_dir._target_")
    assert victim.read_text() == "precious" and not (tmp_path / "run").exists()


def test_evaluation_caches_tokens_here_not_where_the_checkpoint_says(checkpoint, tmp_path):
    elsewhere = tmp_path / "their_cache"
    path = crafted(checkpoint, tmp_path, lambda c: c["seqlab_config"]["data"].update(cache_dir=str(elsewhere)))
    load_with_data(str(path), cache_dir=str(tmp_path / "ours"))
    assert not elsewhere.exists() and list((tmp_path / "ours").glob("corpus-*.pt"))


def test_a_checkpoint_written_before_the_net_had_its_own_node_still_loads(checkpoint, tmp_path):
    def earlier(contents):  # the net's settings among the module's hyperparameters, no model.net in the config
        net = contents["seqlab_config"]["model"].pop("net")
        contents["hyper_parameters"].update({k: v for k, v in net.items() if k not in ("_target_", "_partial_")})

    now, _ = load_trained(str(crafted(checkpoint, tmp_path, lambda c: None)))
    before, _ = load_trained(str(crafted(checkpoint, tmp_path, earlier)))
    assert before.net.rnn.hidden_size == now.net.rnn.hidden_size == 16
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), now.state_dict().values()))
