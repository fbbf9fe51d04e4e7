"""A synthetic corpus of WikiText-103's shape, for the large-corpus benchmark when the real one is absent.

    python benchmarks/make_synthetic_corpus.py --out /tmp/wt103syn          # about 30 s, 0.58 GB

writes `wiki.train.tokens`, `wiki.valid.tokens` and `wiki.test.tokens` in WikiText's layout (articles of
` = Title = ` headings and paragraph lines, a ` ` line between any two) with WikiText-103's published sizes
under the pytorch/examples tokenization (whitespace split, one `<eos>` per line): train 103,227,021,
valid 217,646 and test 245,569 tokens, a vocabulary of exactly 267,735 types (`<eos>` included). Words are
drawn from a Zipf-Mandelbrot law (frequent types short, rare ones long, so bytes per token are about the real
corpus's), and every type appears in the training file. `--scale 0.01` makes a corpus a hundredth of the size
(fewer types too), for trying things quickly. The same `--seed` gives the same files.
"""

from __future__ import annotations

import argparse
import string
import time
from pathlib import Path

import numpy as np

SIZES = {"train": 103_227_021, "valid": 217_646, "test": 245_569}  # tokens, <eos> included
VOCABULARY = 267_735  # types, <eos> included
# The commonest WikiText-103 tokens, in about their order: the head of the Zipf law looks like the real one.
HEAD = ("the , . of and in to a = was @-@ 's <unk> is for on as by with he that at from his it an were are "
        "which this also be @,@ had first one their ( ) ; : @.@ \" has her after not two new its but who "
        "they she been or when all would time during into year more other over only most i up out there years "
        "film 1 series may later three some game season city can about no made until many later's").split()
LETTERS = np.frombuffer(string.ascii_lowercase.encode(), dtype=np.uint8)


def word_types(count: int, rng: np.random.Generator) -> list[str]:
    """`count` distinct words: HEAD first, then random lowercase words whose length grows with their rank."""
    words = list(dict.fromkeys(HEAD))[:count]
    seen = set(words)
    rank = len(words) + 1
    while len(words) < count:
        need = count - len(words)
        ranks = np.arange(rank, rank + need)
        lengths = np.clip(np.rint(1.3 + 0.5 * np.log(ranks) + rng.normal(0, 1, need)), 2, 18).astype(int)
        letters = LETTERS[rng.integers(0, 26, int(lengths.sum()))].tobytes().decode()
        cuts = np.concatenate([[0], np.cumsum(lengths)])
        for a, b in zip(cuts[:-1], cuts[1:]):
            word = letters[a:b]
            if word not in seen:
                seen.add(word)
                words.append(word)
        rank += need
    return words


def line_lengths(tokens: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Words per line and line kinds (0 blank, 1 heading, 2 subheading, 3 paragraph) for a file of exactly
    `tokens` tokens (each line's words, its '=' marks and its <eos>), in WikiText's pattern: a blank line
    before every other line, an article heading, then sections of paragraphs under subheadings."""
    marks = {0: 0, 1: 2, 2: 4, 3: 0}
    kinds, words = [], []
    total = 0
    while True:
        article = [(1, int(rng.integers(1, 5)))]  # a heading, then 1-6 sections of 1-6 paragraphs
        for section in range(int(rng.integers(1, 7))):
            if section:
                article.append((2, int(rng.integers(1, 4))))
            for _ in range(int(rng.integers(1, 7))):
                article.append((3, int(min(max(rng.lognormal(4.8, 0.6), 4), 1500))))
        for kind, length in article:
            for k, n in ((0, 0), (kind, length)):
                size = n + marks[k] + 1
                if total + size > tokens:  # the rest: one paragraph line, or a blank line for a single token
                    left = tokens - total
                    if left:
                        kinds.append(3 if left > 1 else 0)
                        words.append(left - 1)
                    return np.array(kinds), np.array(words)
                kinds.append(k)
                words.append(n)
                total += size


def write_split(path: Path, tokens: int, table: np.ndarray, cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Write one file of exactly `tokens` tokens; return how often each word type occurs in it."""
    kinds, lengths = line_lengths(tokens, rng)
    counts = np.zeros(len(table), dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    chunk = 1 << 15  # lines per write
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for first in range(0, len(kinds), chunk):
            last = min(first + chunk, len(kinds))
            base = starts[first]
            ids = np.searchsorted(cdf, rng.random(int(ends[last - 1] - base)), side="right")
            np.minimum(ids, len(table) - 1, out=ids)
            counts += np.bincount(ids, minlength=len(table))
            text = table[ids].tolist()
            out = []
            for kind, a, b in zip(kinds[first:last].tolist(), (starts[first:last] - base).tolist(),
                                  (ends[first:last] - base).tolist()):
                body = " ".join(text[a:b])
                if kind == 0:
                    out.append(" \n")
                elif kind == 1:
                    out.append(f" = {body} = \n")
                elif kind == 2:
                    out.append(f" = = {body} = = \n")
                else:
                    out.append(f" {body} \n")
            f.write("".join(out))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write wiki.{train,valid,test}.tokens into")
    parser.add_argument("--seed", type=int, default=103)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of WikiText-103's size (1.0: full)")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    types = VOCABULARY - 1  # <eos> is not a word of the files
    if args.scale < 1:
        types = max(len(HEAD), int(types * args.scale ** 0.5))
    words = word_types(types, rng)
    ranks = np.arange(1, types + 1, dtype=np.float64)
    cdf = np.cumsum(1.0 / (ranks + 2.7))  # Zipf-Mandelbrot, exponent 1
    cdf /= cdf[-1]
    table = np.array(words, dtype=object)
    for split, size in SIZES.items():
        size = max(1000, int(size * args.scale))
        counts = write_split(out / f"wiki.{split}.tokens", size, table, cdf, rng)
        path = out / f"wiki.{split}.tokens"
        print(f"{path}: {size:,} tokens, {int((counts > 0).sum()):,} word types, {path.stat().st_size:,} bytes")
        if split == "train" and args.scale >= 1 and not counts.all():  # the rarest type is due ~29 times: never seen
            raise SystemExit(f"{int((counts == 0).sum())} word types never drawn: try another --seed")
    print(f"vocabulary {types + 1:,} types with <eos>; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
