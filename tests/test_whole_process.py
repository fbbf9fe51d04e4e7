"""benchmarks/whole_process.py: both programs run, alternated, and the table reports each one's own figures.

pytorch/examples is not in the repository: a stand-in `main.py` in its place prints what the real one prints.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO, write_corpus

STAND_IN = """
import argparse, pathlib, time
parser = argparse.ArgumentParser()
parser.add_argument("--data"); parser.add_argument("--epochs"); parser.add_argument("--save")
args = parser.parse_args()
files = sorted(p.name for p in pathlib.Path(args.data).iterdir())
assert files == ["test.txt", "train.txt", "valid.txt"], files
assert pathlib.Path(args.data, "train.txt").resolve().name == "valid.txt"  # WT2-small: trains on valid.txt
time.sleep(0.2)
print("| end of epoch   1 | time:  0.20s | valid loss  6.51 | valid ppl   669.76")
print("| End of training | test loss  6.51 | test ppl   669.76")
"""


def run(*args, cwd):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "whole_process.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_the_table_compares_both_programs_with_their_own_perplexities(tmp_path):
    write_corpus(tmp_path / "corpus")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "main.py").write_text(STAND_IN)
    done = run("--examples", str(tmp_path / "examples"), "--data-dir", str(tmp_path / "corpus"), "--rounds", "2",
               cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    seqlab = [c.strip() for c in rows["seqlab `train.py experiment=wt2_classic`"].strip("|").split("|")]
    examples = [c.strip() for c in rows["pytorch/examples `main.py`"].strip("|").split("|")]
    assert examples[3:5] == ["669.76", "669.76"]
    assert len(seqlab[2].split(", ")) == 2 and float(seqlab[1]) == min(map(float, seqlab[2].split(", ")))
    assert float(seqlab[3]) > 1 and seqlab[3] == seqlab[4]  # WT2-small validates and tests on the same file
    ratio = float(re.search(r"\*\*([\d.]+)x\*\*", rows["pytorch/examples / seqlab"]).group(1))
    theirs, ours = float(examples[1]), float(seqlab[1])  # shown to 0.1 s: the ratio lies within their rounding
    assert (theirs - 0.05) / (ours + 0.05) - 0.005 <= ratio <= (theirs + 0.05) / (ours - 0.05) + 0.005
    assert "round 1: seqlab" in done.stdout and "round 2: examples" in done.stdout
    assert not list(tmp_path.glob("outputs")), "runs go to a temporary folder"


def test_a_folder_without_main_py_is_one_line(tmp_path):
    done = run("--examples", str(tmp_path), cwd=tmp_path)
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [
        f"error: no main.py in {tmp_path}: give --examples the word_language_model folder"]


