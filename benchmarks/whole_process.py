"""The whole process against pytorch/examples' word_language_model, as a user runs each: one epoch of the classic
recipe on WT2-small, then validation and test, timed from launch to exit.

    python benchmarks/whole_process.py --examples PATH/TO/examples/word_language_model \
        --data-dir ../shared/data/wikitext-2 [--rounds 2]

Each round runs the two programs one after the other (which goes first alternates), each in a fresh process on
an idle machine; the table gives the best round of each, the ratio, and each program's perplexities (seqlab's
from its metrics.json, pytorch/examples' from its printout). The programs are:

- seqlab: `scripts/train.py experiment=wt2_classic data=wikitext2_small data.data_dir=DIR trainer.max_epochs=1`,
  with its default loggers and callbacks (TensorBoard, CSV, checkpoints);
- pytorch/examples: `main.py --data WT2SMALL --epochs 1` (2 x 200 LSTM, batch 20, BPTT 35, SGD lr 20, clip
  0.25, dropout 0.2, the same recipe), run in the folder given, whose `data.py`/`model.py` it imports; WT2SMALL
  is a temporary folder of links that gives it WT2-small's files (train: valid.txt; valid and test: test.txt).

Their code is not in this repository: check out pytorch/examples yourself. Its main.py at commit cd01f93 needs
three changes for torch 2.x, none of which changes its work: `nn.NLLLoss()` for `nn.CrossEntropyLoss()` on the
model's log-probabilities (upstream's fix), `p.data.add_(p.grad, alpha=-lr)` for the removed `add_(-lr, grad)`,
and `torch.load(f, weights_only=False)` for its whole-model checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WT2_SMALL = {"train.txt": "valid.txt", "valid.txt": "test.txt", "test.txt": "test.txt"}  # conf/data/wikitext2_small


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"error: {' '.join(command[:3])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def seqlab(data_dir: Path, work: Path, round_: int) -> dict:
    run_dir = work / f"seqlab-{round_}"
    seconds, _ = timed([
        sys.executable, str(REPO / "scripts" / "train.py"), "experiment=wt2_classic", "data=wikitext2_small",
        f"data.data_dir={data_dir}", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={work / 'cache'}",
    ], cwd=REPO)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"seconds": seconds, "val_ppl": metrics["val/ppl"], "test_ppl": metrics["test/ppl"],
            "train_seconds": metrics["train_seconds"], "fit_seconds": metrics["fit_seconds"],
            "run_seconds": metrics["wall_seconds"]}


def examples(folder: Path, wt2_small: Path, work: Path, round_: int) -> dict:
    seconds, stdout = timed([
        sys.executable, "main.py", "--data", str(wt2_small), "--epochs", "1",
        "--save", str(work / f"model-{round_}.pt"),
    ], cwd=folder)
    val = re.findall(r"valid ppl\s+([\d.]+)", stdout)
    test = re.findall(r"test ppl\s+([\d.]+)", stdout)
    return {"seconds": seconds, "val_ppl": float(val[-1]), "test_ppl": float(test[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=Path, required=True, help="pytorch/examples' word_language_model folder")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "wikitext-2")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (args.examples / "main.py").is_file():
        sys.exit(f"error: no main.py in {args.examples}: give --examples the word_language_model folder")
    if not all((args.data_dir / name).is_file() for name in set(WT2_SMALL.values())):
        sys.exit(f"error: {args.data_dir} lacks valid.txt/test.txt: give --data-dir WikiText-2's folder")
    with tempfile.TemporaryDirectory(prefix="whole-process-") as tmp:
        work = Path(tmp)
        wt2_small = work / "wt2-small"
        wt2_small.mkdir()
        for name, source in WT2_SMALL.items():
            (wt2_small / name).symlink_to((args.data_dir / source).resolve())
        # A first seqlab run fills its token cache, as any user's first run does; the timed ones reuse it.
        print("warming seqlab's token cache...", flush=True)
        seqlab(args.data_dir.resolve(), work, -1)
        results: dict[str, list[dict]] = {"seqlab": [], "examples": []}
        for round_ in range(args.rounds):
            order = ("seqlab", "examples") if round_ % 2 == 0 else ("examples", "seqlab")
            for name in order:
                result = seqlab(args.data_dir.resolve(), work, round_) if name == "seqlab" \
                    else examples(args.examples.resolve(), wt2_small, work, round_)
                results[name].append(result)
                print(f"round {round_ + 1}: {name} {result['seconds']:.1f} s, val ppl {result['val_ppl']:.2f}",
                      flush=True)
    best = {name: min(runs, key=lambda r: r["seconds"]) for name, runs in results.items()}
    load = os.getloadavg()[0]
    print(f"\n{os.cpu_count()} CPUs, load average {load:.2f} at the end; best of {args.rounds} rounds each\n")
    print("| program | wall (s) | rounds (s) | val ppl | test ppl |")
    print("| --- | --- | --- | --- | --- |")
    labels = {"seqlab": "seqlab `train.py experiment=wt2_classic`", "examples": "pytorch/examples `main.py`"}
    for name, label in labels.items():
        rounds = ", ".join(f"{r['seconds']:.1f}" for r in results[name])
        print(f"| {label} | {best[name]['seconds']:.1f} | {rounds} | {best[name]['val_ppl']:.2f} | "
              f"{best[name]['test_ppl']:.2f} |")
    print(f"| pytorch/examples / seqlab | **{best['examples']['seconds'] / best['seqlab']['seconds']:.2f}x** | | | |")
    fastest = best["seqlab"]
    print(f"\nseqlab's best round: {fastest['seconds'] - fastest['run_seconds']:.1f} s to start (imports, Hydra), "
          f"{fastest['train_seconds']:.1f} s training, {fastest['fit_seconds'] - fastest['train_seconds']:.1f} s "
          f"validating, {fastest['run_seconds'] - fastest['fit_seconds']:.1f} s setting up, testing and writing")


if __name__ == "__main__":
    main()
