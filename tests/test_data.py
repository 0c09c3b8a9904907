"""Data loading: the snippet format, the fixed splits, local files."""
import json

import pytest

from structlora import data as D


def write_snippets(root, n=40):
    folder = root / "vader" / "hutto_ICWSM_2014"
    folder.mkdir(parents=True)
    lines = [f"{i}\t{(i % 9) - 4 + 0.25:.2f}\tsentence number {i}" for i in range(n)]
    for name in D.FILES.values():
        (folder / name).write_text("\ufeff" + "\r\n".join(lines))
    return root


def test_read_snippets_filters_and_labels(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("\ufeff1\t2.0\tgreat film\r\n2\t-0.3\tmeh\r\n3\t-1.5\tawful\r\nbroken line\r\n")
    texts, labels = D.read_snippets(f)
    assert texts == ["great film", "awful"] and labels == [1, 0]


def test_fixed_nested_splits(tmp_path, monkeypatch):
    root = write_snippets(tmp_path, n=2000)
    monkeypatch.setitem(D.SPLIT_SIZES, "movie-reviews", (100, 50))
    full = D.load_sentiment("movie-reviews", root=root)
    small = D.load_sentiment("movie-reviews", train_size=30, root=root)
    assert small.test == full.test and small.validation == full.validation
    assert small.train[0] == full.train[0][:30]
    assert not set(full.test[0]) & set(full.train[0])
    with pytest.raises(ValueError, match="train_size=0 is invalid"):
        D.load_sentiment("movie-reviews", train_size=0, root=root)
    with pytest.raises(ValueError, match="unknown data set 'imdb'"):
        D.load_sentiment("imdb", root=root)


def test_local_jsonl(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"t{i}", "label": i % 3}) for i in range(50)))
    s = D.load_text_data(str(f))
    assert (len(s.train[0]), len(s.validation[0]), len(s.test[0])) == (35, 5, 10)
    assert s.num_labels == 3
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_text_data(str(tmp_path / "missing.jsonl"))
