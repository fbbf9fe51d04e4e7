"""Fuzzing the checkpoint loader (checkpoints.load_trained): arbitrary bytes, cut or damaged real checkpoints,
zips that are not checkpoints, pickles naming disallowed globals, and real checkpoints with their contents
changed all end in a model or one SeqlabError line, never a traceback or a hang."""

from __future__ import annotations

import copy
import io
import os
import pickle
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from seqlab.checkpoints import load_trained
from seqlab.errors import CheckpointError
from tests.fuzz.outcomes import attempt, fresh_folder, share

HYDRA_KEYS = ["_target_", "_args_", "_partial_", "_recursive_", "_convert_", "_instantiator"]


@pytest.fixture(scope="session")
def real(tmp_path_factory) -> tuple[bytes, dict]:
    """The bytes and the contents of a checkpoint from a one-step run of scripts/train.py."""
    from tests.conftest import write_corpus
    from tests.test_scripts import TINY, run_script

    work = tmp_path_factory.mktemp("real-checkpoint")
    write_corpus(work / "corpus", lines_per_split=(60, 20, 20))
    run_script("train.py", "data=text", "data.data_dir=corpus", "debug=fast", f"hydra.run.dir={work / 'run'}",
               *TINY, cwd=work)
    path = work / "run" / "checkpoints" / "last.ckpt"
    return path.read_bytes(), torch.load(path, weights_only=True)


def load(folder: Path, data: bytes):
    path = folder / "fuzzed.ckpt"
    path.write_bytes(data)
    return load_trained(str(path))


@contextmanager
def deep_recursion():
    """torch.save pickles through Python code, which counts nesting against the recursion limit."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def saved(contents) -> bytes:
    buffer = io.BytesIO()
    with deep_recursion():
        torch.save(contents, buffer)
    return buffer.getvalue()


def with_pickle(checkpoint: bytes, data_pkl: bytes) -> bytes:
    """`checkpoint`'s zip with its pickle replaced: tensors stay where torch looks for them."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(checkpoint)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            is_pickle = item.filename.endswith("/data.pkl")
            target.writestr(item.filename, data_pkl if is_pickle else source.read(item.filename))
    return out.getvalue()


class Call:
    """Pickles as a call of `function(*args)`: what a malicious checkpoint asks the unpickler to run."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


# Harmless if ever called, and all outside torch's weights_only allow-list.
DISALLOWED = [Call(eval, "1"), Call(os.getcwd), Call(Path, "x"), Call(getattr, 1, "real"),
              Call(zipfile.ZipInfo, "x"), Call(io.BytesIO, b"x"), Call(copy.copy, 1)]


def tensors():
    shapes = st.lists(st.integers(0, 5), max_size=3)
    dtypes = st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool, torch.complex64, torch.uint8])
    return st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype), shapes, dtypes)


LEAVES = (st.none() | st.booleans() | st.integers(-2, 64) | st.floats() | st.text(max_size=8) | tensors()
          | st.sampled_from(["${oc.env:HOME}", "seqlab.models.forecaster.Forecaster", "os.system", ""]))
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner)
    | st.dictionaries(st.sampled_from(HYDRA_KEYS) | st.text(max_size=6) | st.integers(0, 3), inner, max_size=3),
    max_leaves=8,
)


def paths(tree, prefix=()) -> list[tuple]:
    """Every key path into the nested dicts of a checkpoint."""
    found = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.append((*prefix, key))
            found.extend(paths(value, (*prefix, key)))
    return found


@st.composite
def edits(draw, contents: dict) -> list[tuple]:
    every = sorted(paths(contents), key=repr)
    kinds = st.sampled_from(["replace", "replace", "delete", "add"])
    return [(draw(kinds), draw(st.sampled_from(every)), draw(VALUES)) for _ in range(draw(st.integers(1, 3)))]


def edited(contents: dict, changes: list[tuple]) -> dict:
    contents = copy.deepcopy(contents)
    for kind, path, value in changes:
        parent = contents
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue  # an earlier change replaced a dict on the way
        if kind == "delete":
            parent.pop(path[-1], None)
        elif kind == "add":
            parent[f"{path[-1]}_new"] = value
        else:
            parent[path[-1]] = value
    return contents


@share(5)
@given(data=st.binary(max_size=4000))
@example(data=b"")
@example(data=b"PK\x05\x06" + b"\x00" * 18)  # an empty zip
def test_arbitrary_bytes_end_in_a_model_or_one_error_line(work, data):
    attempt("checkpoint", load, fresh_folder(work), data)


@share(5)
@given(data=st.data())
def test_cut_or_damaged_checkpoints_end_in_a_model_or_one_error_line(work, real, data):
    raw, _ = real
    cut = data.draw(st.integers(0, len(raw)))
    damaged = bytearray(raw[:cut])
    for _ in range(data.draw(st.integers(0, 3)) if damaged else 0):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    attempt("checkpoint", load, fresh_folder(work), bytes(damaged))


ZIP_NAME_CHARACTERS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")  # names zipfile can write
MEMBER_NAMES = ["archive/data.pkl", "archive/version", "archive/data/0", "archive/byteorder", "data.pkl", "x.txt"]


@share(5)
@given(members=st.dictionaries(st.sampled_from(MEMBER_NAMES) | st.text(ZIP_NAME_CHARACTERS, min_size=1, max_size=10),
                               st.binary(max_size=200), max_size=4))
@example(members={"archive/data.pkl": pickle.dumps({"seqlab_config": {}}), "archive/version": b"3\n"})
def test_zips_that_are_not_checkpoints_end_in_one_error_line(work, members):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    attempt("checkpoint", load, fresh_folder(work), out.getvalue())


@share(5)
@given(
    call=st.sampled_from(DISALLOWED),
    where=st.sampled_from(["top", "config", "state_dict", "hyper_parameters"]),
    protocol=st.integers(2, pickle.HIGHEST_PROTOCOL),
)
def test_pickles_naming_disallowed_globals_are_refused(work, real, call, where, protocol):
    raw, contents = real
    contents = {k: v for k, v in contents.items() if k != "state_dict"}  # plain pickling cannot save tensors here
    if where == "top":
        contents = call
    else:
        contents = {**contents, where: call} if where != "config" else {**contents, "seqlab_config": {"data": call}}
    err = attempt("checkpoint", load, fresh_folder(work), with_pickle(raw, pickle.dumps(contents, protocol=protocol)))
    assert not isinstance(err, tuple), "a pickle naming a disallowed global was loaded"


def names_a_tensor(err: BaseException) -> bool:
    """Reported, see test_refusals_naming_a_tensor_are_one_line: the refusal quotes the tensor's repr."""
    return isinstance(err, CheckpointError) and "\n" in str(err) and "tensor(" in str(err)


@share(5)
@given(data=st.data())
def test_real_checkpoints_with_changed_contents_end_in_a_model_or_one_error_line(work, real, data):
    _, contents = real
    changes = data.draw(edits(contents))
    attempt("checkpoint", load, fresh_folder(work), saved(edited(contents, changes)))


def nested(depth: int, leaf=None) -> list:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# --- found by this file in checkpoints.py, and fixed: kept as regressions ----------------------------------------

@pytest.mark.parametrize("place", ["data", "hyper_parameters"])
def test_deeply_nested_values_end_in_a_model_or_one_error_line(work, real, place):
    # A list 5000 levels deep (torch.load reads it without recursing) in the data config or the
    # hyperparameters once ended in a RecursionError traceback.
    _, contents = real
    contents = copy.deepcopy(contents)
    target = contents["seqlab_config"]["data"] if place == "data" else contents["hyper_parameters"]
    target["deep"] = nested(5000)
    attempt("checkpoint", load, fresh_folder(work), saved(contents))  # data: loads; hyperparameters: refused


@pytest.mark.parametrize("place", ["model", "data", "hyper_parameters"])
def test_refusals_naming_a_tensor_are_one_line(work, real, place):
    # A tensor as the model's or the data's _target_, or under a _target_ key in the hyperparameters: the
    # refusal once quoted the tensor's repr, over several lines.
    _, contents = real
    contents = copy.deepcopy(contents)
    if place == "hyper_parameters":
        contents["hyper_parameters"]["_target_"] = torch.zeros(2, 1)
    else:
        contents["seqlab_config"][place]["_target_"] = torch.zeros(2, 1)
    with pytest.raises(CheckpointError) as err:
        load(fresh_folder(work), saved(contents))
    assert "\n" not in str(err.value), str(err.value)
