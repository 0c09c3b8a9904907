"""Labelled text data that works offline: movie-review and product-review sentiment.

Both come from the human-rated snippets shipped in the ``vaderSentiment==3.3.2``
source archive (Hutto & Gilbert, ICWSM 2014). The archive is fetched once with
``pip download`` into a cache directory and reused. Ratings lie in [-4, 4];
snippets with ``|rating| < 0.5`` are dropped and the rest labelled
``1 = positive``, ``0 = negative``.

Splits are fixed: a seeded permutation (seed 1234) of the kept snippets, then
``test`` and ``validation`` of fixed size, the rest ``train``. ``train_size``
takes the first N training examples, so smaller training sets are nested.
Any ``datasets`` data set can be used instead through :func:`load_hf_dataset`.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ARCHIVE = "vaderSentiment-3.3.2.tar.gz"
INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
FILES = {
    "movie-reviews": "movieReviewSnippets_GroundTruth.txt",
    "amazon-reviews": "amazonReviewSnippets_GroundTruth.txt",
}
SPLIT_SIZES = {"movie-reviews": (1000, 500), "amazon-reviews": (600, 300)}  # (test, validation)
SPLIT_SEED = 1234
MIN_ABS_RATING = 0.5


@dataclass
class TextSplits:
    """Texts and integer labels per split."""

    train: tuple[list[str], list[int]]
    validation: tuple[list[str], list[int]]
    test: tuple[list[str], list[int]]
    num_labels: int = 2


def cache_dir() -> Path:
    """``$STRUCTLORA_CACHE`` or ``~/.cache/structlora``."""
    return Path(os.environ.get("STRUCTLORA_CACHE", Path.home() / ".cache" / "structlora"))


def ensure_snippets(root: Path | None = None) -> Path:
    """Directory holding the ICWSM 2014 snippet files, fetched and unpacked once."""
    root = Path(root or cache_dir()) / "vader"
    out = root / "hutto_ICWSM_2014"
    if (out / FILES["movie-reviews"]).exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    archive = root / ARCHIVE
    if not archive.exists():
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
               "vaderSentiment==3.3.2", "-d", str(root)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not archive.exists():
            raise RuntimeError(
                "could not fetch the vaderSentiment 3.3.2 source archive with pip "
                f"({result.stderr.strip().splitlines()[-1:] or 'no output'}); download it by hand into {root}"
            )
    with tarfile.open(archive) as outer:
        inner = outer.extractfile(INNER)
        with tarfile.open(fileobj=inner) as tar:
            tar.extractall(root, filter="data")
    return out


def read_snippets(file: Path) -> tuple[list[str], list[int]]:
    """Parse ``id<TAB>rating<TAB>text`` lines; keep ``|rating| >= 0.5``."""
    texts, labels = [], []
    for line in file.read_text(encoding="utf-8-sig").splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        rating = float(parts[1])
        if abs(rating) >= MIN_ABS_RATING:
            texts.append(parts[2].strip())
            labels.append(int(rating > 0))
    return texts, labels


def load_sentiment(name: str = "movie-reviews", train_size: int | None = None, root: Path | None = None) -> TextSplits:
    """The fixed splits of ``"movie-reviews"`` or ``"amazon-reviews"``."""
    if name not in FILES:
        raise ValueError(f"unknown data set {name!r}; offline choices: {sorted(FILES)} (or a `datasets` name)")
    texts, labels = read_snippets(ensure_snippets(root) / FILES[name])
    order = list(range(len(texts)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_test, n_val = SPLIT_SIZES[name]
    pick = lambda idx: ([texts[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    train_idx = order[n_test + n_val:]
    if train_size is not None:
        if not 1 <= train_size <= len(train_idx):
            raise ValueError(f"train_size={train_size} is invalid for {name}: use 1..{len(train_idx)}")
        train_idx = train_idx[:train_size]
    return TextSplits(pick(train_idx), pick(order[n_test:n_test + n_val]), pick(order[:n_test]))


def load_hf_dataset(name: str, text_column: str = "text", label_column: str = "label",
                    train_size: int | None = None) -> TextSplits:
    """Any Hugging Face ``datasets`` data set with train / validation (or test) splits."""
    try:
        import datasets
    except ImportError:
        raise ValueError(f"data set {name!r} is not an offline one; `pip install datasets` to load it from the hub") from None
    ds = datasets.load_dataset(name)
    missing = [c for c in (text_column, label_column) if c not in ds["train"].column_names]
    if missing:
        raise ValueError(f"data set {name!r} has no column(s) {missing}; columns: {ds['train'].column_names}")
    col = lambda split: (list(split[text_column]), [int(v) for v in split[label_column]])  # noqa: E731
    val = ds["validation"] if "validation" in ds else ds["test"]
    test = ds["test"] if "test" in ds else val
    train = ds["train"].select(range(train_size)) if train_size else ds["train"]
    num_labels = len(set(train[label_column]))
    return TextSplits(col(train), col(val), col(test), num_labels)


LOCAL_SPLIT = (0.2, 0.1)  # (test, validation) fractions of a local file


def load_local_file(path: str | os.PathLike, train_size: int | None = None) -> TextSplits:
    """A local ``.jsonl`` (``{"text": ..., "label": ...}`` per line) or ``.csv`` / ``.tsv``
    file with ``text`` and ``label`` columns; split 70/10/20 (train/validation/test)
    by the same seeded permutation as the packaged sets."""
    import csv
    import json

    path = Path(path)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif path.suffix in (".csv", ".tsv"):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    else:
        raise ValueError(f"data file {path} must be .jsonl, .csv or .tsv with 'text' and 'label' fields")
    if len(rows) < 10 or any("text" not in r or "label" not in r for r in rows):
        raise ValueError(f"data file {path} needs at least 10 rows, each with 'text' and 'label'")
    texts, labels = [str(r["text"]) for r in rows], [int(r["label"]) for r in rows]
    order = list(range(len(rows)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_test, n_val = (max(1, int(f * len(rows))) for f in LOCAL_SPLIT)
    pick = lambda idx: ([texts[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    train_idx = order[n_test + n_val:][:train_size]
    return TextSplits(pick(train_idx), pick(order[n_test:n_test + n_val]), pick(order[:n_test]),
                      num_labels=max(labels) + 1)


def load_text_data(name: str, train_size: int | None = None) -> TextSplits:
    """Offline sentiment sets by name, a local file by path, anything else through ``datasets``."""
    if name in FILES:
        return load_sentiment(name, train_size)
    if Path(name).suffix in (".jsonl", ".csv", ".tsv"):
        if not Path(name).exists():
            raise FileNotFoundError(f"data file {name} does not exist")
        return load_local_file(name, train_size)
    return load_hf_dataset(name, train_size=train_size)
