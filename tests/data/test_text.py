import json

import pytest
import torch

from ganforge.config import ConfigError
from ganforge.data import text
from ganforge.data.text import Vocab, fit_length, holdout_split, prepare_text, read_lines


def test_read_lines_strips_and_skips_blank_lines(tmp_path):
    p = tmp_path / "words.txt"
    p.write_bytes("\ufeffalpha\r\n  beta \n\n\ngamma délta\n   \n".encode())  # BOM, CRLF, blanks
    assert read_lines(p) == ["alpha", "beta", "gamma délta"]


def test_read_lines_csv_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('id,name\n1,"Smith, Jr"\n2,\n3,Ng\n', encoding="utf-8")
    assert read_lines(p, column="name") == ["Smith, Jr", "Ng"]
    with pytest.raises(ConfigError, match=r"unknown CSV column 'surname'; the header has: id, name$"):
        read_lines(p, column="surname")
    p.write_text("id,name\n1,\n2,  \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no non-empty lines in column 'name'"):
        read_lines(p, column="name")


def test_read_lines_errors(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty.txt: the file is empty"):
        read_lines(tmp_path / "empty.txt")
    (tmp_path / "blank.txt").write_bytes(b"\n  \n\t\n")
    with pytest.raises(ConfigError, match="blank.txt: no non-empty lines$"):
        read_lines(tmp_path / "blank.txt")
    (tmp_path / "nul.bin").write_bytes(b"ab\x00cd")
    with pytest.raises(ConfigError, match=r"binary file \(NUL byte at offset 2\)"):
        read_lines(tmp_path / "nul.bin")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 \\(invalid byte 0xe9 at offset 3\\)"):
        read_lines(tmp_path / "latin1.txt")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfab\xff")
    with pytest.raises(ConfigError, match="invalid byte 0xff at offset 5"):
        read_lines(tmp_path / "bom.txt")
    with pytest.raises(ConfigError, match="missing.txt: cannot read the text file"):
        read_lines(tmp_path / "missing.txt")
    for name in ("empty.txt", "nul.bin", "latin1.txt"):
        with pytest.raises(ConfigError) as e:
            read_lines(tmp_path / name)
        assert "\n" not in str(e.value)


def test_vocab_chars_encode_decode_round_trip():
    v = Vocab.build(["cab", "a", "bb"])
    assert v.itos == ["<end>", "a", "b", "c"] and len(v) == 4
    x = v.encode(["cab", "a", "bb", ""], max_len=4)
    assert x.dtype == torch.long
    torch.testing.assert_close(x, torch.tensor([[3, 1, 2, 0], [1, 0, 0, 0], [2, 2, 0, 0], [0, 0, 0, 0]]))
    assert v.decode(x) == ["cab", "a", "bb", ""]
    # decoding stops at the first end token, whatever follows it
    assert v.decode(torch.tensor([[1, 0, 3, 3], [2, 2, 2, 2]])) == ["a", "bbbb"]


def test_vocab_words_and_lowercase():
    v = Vocab.build(["The cat", "the  DOG sat"], tokens="words", lowercase=True)
    assert v.itos == ["<end>", "cat", "dog", "sat", "the"]
    assert v.normalize("  The   Cat ") == "the cat"
    x = v.encode(["The cat", "the  DOG sat"], max_len=3)
    torch.testing.assert_close(x, torch.tensor([[4, 1, 0], [4, 2, 3]]))
    assert v.decode(x) == ["the cat", "the dog sat"]


def test_vocab_json_round_trip():
    v = Vocab.build(["Ab", "ba"], lowercase=True)
    w = Vocab.from_json(v.to_json())
    assert w.itos == v.itos == ["<end>", "a", "b"] and w.lowercase and w.tokens == "chars"
    assert json.loads(v.to_json()) == {"tokens": "chars", "lowercase": True, "symbols": ["a", "b"]}


def test_vocab_errors():
    with pytest.raises(ConfigError, match="tokens: 'bytes' is not one of chars, words"):
        Vocab.build(["a"], tokens="bytes")
    big = ["".join(chr(0x4E00 + i) for i in range(j, j + 100)) for j in range(0, 10_100, 100)]
    with pytest.raises(ConfigError, match=r"10,100 distinct characters \(more than 10,000\)"):
        Vocab.build(big)
    assert len(Vocab.build(big, tokens="words")) == 102  # 101 distinct words + end
    v = Vocab.build(["ab"])
    with pytest.raises(ConfigError, match="encode: line 2 has 3 tokens, more than max_len=2"):
        v.encode(["a", "abb"], max_len=2)
    with pytest.raises(ConfigError, match="encode: line 1 has the token 'z', not in the vocabulary"):
        v.encode(["z"], max_len=2)


def test_fit_length_default_is_99th_percentile_capped():
    lines = ["a" * 5] * 99 + ["a" * 30]
    v = Vocab.build(lines)
    kept, max_len, report = fit_length(lines, v)
    # linear 99th percentile: index 0.99 * 99 = 98.01 lies between the last 5 and the 30: 5.25 -> ceil 6
    assert max_len == 6 and len(kept) == 99
    assert report == {"max_len": 6, "kept": 99, "dropped": 1, "longest": 30}
    long_lines = ["b" * 100] * 10 + ["b" * 3]
    kept, max_len, report = fit_length(long_lines, Vocab.build(long_lines))
    assert max_len == 64 and kept == ["bbb"] and report["dropped"] == 10
    kept, max_len, _ = fit_length(lines, v, max_len=30)
    assert max_len == 30 and kept == lines


def test_fit_length_every_line_too_long():
    lines = ["abcdef", "abcdefgh"]
    with pytest.raises(ConfigError, match=r"every line is longer than max_len=4 tokens \(the shortest has 6\)"):
        fit_length(lines, Vocab.build(lines), max_len=4)


def test_holdout_split_is_seeded_and_disjoint():
    lines = [f"w{i}" for i in range(50)]
    train, hold = holdout_split(lines, 0.2, seed=3)
    assert len(hold) == 10 and len(train) == 40 and sorted(train + hold) == sorted(lines)
    assert holdout_split(lines, 0.2, seed=3) == (train, hold)
    assert holdout_split(lines, 0.2, seed=4)[1] != hold
    state = torch.get_rng_state()
    holdout_split(lines, 0.5, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    assert [len(p) for p in holdout_split(["a", "b"], 0.01)] == [1, 1]
    with pytest.raises(ConfigError, match=r"holdout: the fraction must be in \(0, 1\), got 1.0"):
        holdout_split(lines, 1.0)
    with pytest.raises(ConfigError, match="needs at least 2 lines"):
        holdout_split(["a"], 0.5)


def test_prepare_text_end_to_end():
    lines = ["Ab", "ba", "ABBA", "b" * 10, "aab", "bab", "abb", "ab"] * 5
    data = prepare_text("toy", lines, lowercase=True, max_len=4, holdout=0.25, seed=1)
    assert data.max_len == 4 and data.vocab.itos == ["<end>", "a", "b"]
    assert data.report == {"lines": 40, "max_len": 4, "kept": 35, "dropped": 5, "longest": 10,
                           "train": 26, "holdout": 9, "vocab_size": 3}
    assert data.x.shape == (26, 4) and data.vocab.decode(data.x) == data.train_lines
    assert all(line == line.lower() for line in data.train_lines + data.holdout_lines)
    oh = data.one_hot(torch.tensor([0, 2]))
    assert oh.shape == (2, 4, 3)
    torch.testing.assert_close(oh.sum(-1), torch.ones(2, 4))


def test_census_surnames():
    pytest.importorskip("names", reason="the surnames ship in the names package (pip install names)")
    rows = text.load_names()
    assert len(rows) == text.NAMES_COUNT == 88_799
    assert rows[:3] == [("SMITH", 1.006), ("JOHNSON", 0.810), ("WILLIAMS", 0.699)]
    assert rows[-1] == ("AALDERINK", 0.0)
    lines = text.surnames()
    assert lines[0] == "smith" and len(set(lines)) == len(lines)
    assert set("".join(lines)) == set("abcdefghijklmnopqrstuvwxyz")


def test_census_surnames_checksum(monkeypatch):
    pytest.importorskip("names")
    monkeypatch.setattr(text, "NAMES_SHA256", "0" * 64)
    with pytest.raises(text.DataUnavailable, match=r"sha256 b0e2b3743ccb\.\.\. is not the expected 000000000000"):
        text.load_names()


def test_census_surnames_without_the_package(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named '{name}'")

    monkeypatch.setattr(text.resources, "files", missing)
    with pytest.raises(text.DataUnavailable, match=r"needs the names package.*; pip install names$"):
        text.load_names()
