"""The large-corpus benchmark: tokenise a WikiText-103-sized corpus into the token cache, then start training on it.

    python benchmarks/make_synthetic_corpus.py --out /tmp/wt103syn      # when the real corpus is absent
    python benchmarks/large_corpus.py --data-dir /tmp/wt103syn

reports, each step in a fresh process, timed from its launch:

1. hashing: SHA-256 of the corpus files (what keying the cache by content costs without the remembered hash);
2. tokenisation with an empty cache (`build_corpus`, as `prepare_data` runs it): wall time; CPU time (user and
   system, of the process and its workers: what other work on the machine does not change); peak memory as
   the kernel counts it, `ru_maxrss` of the process (RUSAGE_SELF) and of its largest worker (RUSAGE_CHILDREN),
   and, sampled every 50 ms in a first run (the sampling costs CPU; the time comes from a second run), the sum
   over the process and its workers of their RSS (pages shared between them counted in each) and of their
   PSS (shared pages divided between the processes sharing them: what the tree takes from the machine);
3. the cache hit: `build_corpus` again, from the launch of the process to the returned corpus;
4. the second run: `scripts/train.py data=wikitext103 data.data_dir=DIR` with the same cache, from its launch
   to the first call of `training_step` (the run stops there), with the moments its data were set up and
   its sanity check began.

`--check` also compares the cache with pytorch/examples' loop run over the files (a line and a token at a
time, about a minute); `--cache-dir` keeps the cache (default: a temporary folder, deleted at the end);
`--num-proc N` sets `data.num_proc`; `--skip-train` leaves out step 4, `--only-train` runs it alone on a
`--cache-dir` filled before. Any other argument is passed to `train.py` as an override
(`trainer.num_sanity_val_steps=0`, say).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TOKENISE = """
import json, resource, sys, time
started = float(sys.argv[1])
from seqlab.data.corpus import CorpusSource, build_corpus
imported = time.time()
corpus = build_corpus(CorpusSource(data_dir=sys.argv[2]), cache_dir=sys.argv[3], num_proc=json.loads(sys.argv[4]))
done = time.time()
usage = {who: resource.getrusage(getattr(resource, who)) for who in ("RUSAGE_SELF", "RUSAGE_CHILDREN")}
cpu = sum(u.ru_utime + u.ru_stime for u in usage.values())
usage = {who: u.ru_maxrss * 1024 for who, u in usage.items()}
print("RESULT " + json.dumps({
    "seconds": done - started, "imports": imported - started, "build": done - imported, "maxrss": usage, "cpu": cpu,
    "tokens": {s: t.numel() for s, t in corpus.splits.items()}, "vocabulary": len(corpus.vocabulary),
}), flush=True)
"""

CHECK = """
import json, sys, time
from pathlib import Path
import numpy as np
from seqlab.data.corpus import CorpusSource, SPLITS, build_corpus, tokenize
started = time.time()
files = CorpusSource(data_dir=sys.argv[1]).local_files()
corpus = build_corpus(CorpusSource(data_dir=sys.argv[1]), cache_dir=sys.argv[2])  # the cache just filled
index, same = {}, {}
for split in SPLITS:
    ids, chunk = [], []
    with open(files[split], encoding="utf-8") as f:  # pytorch/examples' loop, a line and a token at a time
        for line in f:
            for token in tokenize(line, "word"):
                chunk.append(index.setdefault(token, len(index)))
            if len(chunk) > 1 << 22:
                ids.append(np.array(chunk, dtype=np.int64))
                chunk = []
    ids.append(np.array(chunk, dtype=np.int64))
    same[split] = bool(np.array_equal(np.concatenate(ids), corpus.splits[split].numpy()))
print("RESULT " + json.dumps({"vocabulary": list(index) == corpus.vocabulary, "ids": same,
                              "seconds": time.time() - started}), flush=True)
"""

FIRST_STEP = """
import os, runpy, sys, time
started = float(sys.argv[1])
marks = {}
from seqlab.data.text import TextDataModule
from seqlab.models.language_model import LanguageModel

setup = TextDataModule.setup
def timed_setup(self, stage=None):
    setup(self, stage)
    marks.setdefault("data set up", time.time() - started)
TextDataModule.setup = timed_setup

on_validation_start = LanguageModel.on_validation_start
def timed_validation_start(self):
    marks.setdefault("sanity check starts", time.time() - started)
    return on_validation_start(self)
LanguageModel.on_validation_start = timed_validation_start

def first_step(self, batch, batch_idx):
    marks["first training step"] = time.time() - started
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in marks.items()), flush=True)
    os._exit(0)
LanguageModel.training_step = first_step
sys.argv = ["scripts/train.py", *sys.argv[2:]]
runpy.run_path("scripts/train.py", run_name="__main__")
"""


def tree(pid: int) -> list[int]:
    """The process and its descendants, from /proc."""
    found, queue = [], [pid]
    while queue:
        p = queue.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    queue.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return found


def memory(pids: list[int]) -> tuple[int, int]:
    """Summed RSS and PSS of the processes, in bytes."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def run(command: list[str], sample: bool = False) -> tuple[str, float, dict]:
    """Run a command; its RESULT line, wall seconds, and (sampled) peak summed RSS and PSS of its tree."""
    started = time.time()
    process = subprocess.Popen([c.replace("{started}", repr(started)) for c in command], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"rss": 0, "pss": 0}
    if sample:
        while process.poll() is None:
            rss, pss = memory(tree(process.pid))
            peak = {"rss": max(peak["rss"], rss), "pss": max(peak["pss"], pss)}
            time.sleep(0.05)
    out, err = process.communicate()
    wall = time.time() - started
    result = next((line[len("RESULT "):] for line in out.splitlines() if line.startswith("RESULT ")), None)
    if process.returncode != 0 or result is None:
        sys.exit(f"{' '.join(command[:4])}... failed ({process.returncode}):\n{err[-3000:]}")
    return result, wall, peak


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def tokenise_and_load(args, data_dir: str, cache: Path, python: str) -> None:
    """Steps 1 to 3."""
    sys.path.insert(0, str(REPO / "src"))
    from seqlab.data.corpus import CorpusSource, file_digest

    files = CorpusSource(data_dir=data_dir).local_files()
    size = sum(p.stat().st_size for p in files.values())
    started = time.perf_counter()
    for path in files.values():
        file_digest(path)
    print(f"1. hashing {size / 1e6:.0f} MB (SHA-256, page cache warm): {time.perf_counter() - started:.2f} s")

    tokenise = [python, "-c", TOKENISE, "{started}", data_dir, str(cache), json.dumps(args.num_proc)]
    _, _, peak = run(tokenise, sample=True)  # sampling /proc costs CPU: a run for memory, then one for time
    shutil.rmtree(cache)
    cache.mkdir()
    first = json.loads(run(tokenise)[0])
    print(f"2. tokenisation, empty cache: {first['seconds']:.1f} s from launch ({first['imports']:.1f} s imports, "
          f"{first['build']:.1f} s build_corpus), {first['cpu']:.1f} CPU seconds (process and workers); "
          f"{sum(first['tokens'].values()):,} tokens {first['tokens']}, vocabulary {first['vocabulary']:,}")
    print(f"   peak memory: maxrss {gib(first['maxrss']['RUSAGE_SELF'])} (process), "
          f"{gib(first['maxrss']['RUSAGE_CHILDREN'])} (largest worker); sampled sum over the tree: "
          f"RSS {gib(peak['rss'])}, PSS {gib(peak['pss'])}")
    sizes = [f"{p.name} ({p.stat().st_size / 1e6:.0f} MB)" for p in sorted(cache.glob("corpus-*"))]
    print(f"   cache: {', '.join(sizes)}")
    if args.check:
        check = json.loads(run([python, "-c", CHECK, data_dir, str(cache)])[0])
        print(f"   check against the sequential rule ({check['seconds']:.0f} s): same vocabulary "
              f"{check['vocabulary']}, same ids {check['ids']}")

    hit = json.loads(run(tokenise)[0])
    print(f"3. cache hit: {hit['seconds']:.2f} s from launch ({hit['imports']:.2f} s imports, "
          f"{hit['build']:.2f} s build_corpus); maxrss {gib(hit['maxrss']['RUSAGE_SELF'])}")


def first_step(args, overrides: list[str], data_dir: str, cache: Path, python: str) -> None:
    """Step 4."""
    run_dir = tempfile.mkdtemp(prefix="seqlab-bench-run-")
    train = ["data=wikitext103", f"data.data_dir={data_dir}", f"paths.cache_dir={cache}", "logger=none",
             f"hydra.run.dir={run_dir}", *([f"data.num_proc={args.num_proc}"] if args.num_proc else []), *overrides]
    try:
        result = run([python, "-c", FIRST_STEP, "{started}", *train])[0]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"4. second run, python scripts/train.py {' '.join(train)}:\n   {result.replace('=', ' ')} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="wiki.{train,valid,test}.tokens, e.g. /tmp/wt103syn")
    parser.add_argument("--cache-dir", help="token cache to fill (emptied first); default: a temporary one")
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--check", action="store_true", help="compare the cache with a sequential tokenisation")
    parser.add_argument("--skip-train", action="store_true", help="leave out step 4")
    parser.add_argument("--only-train", action="store_true", help="step 4 alone, on the filled --cache-dir")
    args, overrides = parser.parse_known_args()
    if args.only_train and not args.cache_dir:
        sys.exit("--only-train needs the --cache-dir an earlier run filled")
    data_dir = str(Path(args.data_dir).resolve())
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="seqlab-bench-cache-"))
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        if not args.only_train:
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir(parents=True)
            tokenise_and_load(args, data_dir, cache, sys.executable)
        if not args.skip_train:
            first_step(args, overrides, data_dir, cache, sys.executable)
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
