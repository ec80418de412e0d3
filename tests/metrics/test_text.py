import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from ganforge.metrics.text import METRICS, NGramLM, jsd, ngram_counts, ngram_sample, text_metrics, text_warnings

CORPUS = ["abracadabra", "abba", "cabbage", "bad", "dab", "a", "", "barbara", "abracadabra", "dabba",
          "bab", "cab", "abc", "aaa", "cccb", "dad", "add", "bade"]
QUERIES = ["abc", "dcba", "", "aaaa", "eae", "abracadabra", "ge"]


def _discounts_reference(counts):
    """Chen & Goodman's modified KN estimates, written out again for the cross-check."""
    n = [sum(1 for c in counts if c == k) for k in (1, 2, 3, 4)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] > 0 else 0.5
    y = y if 0 < y < 1 else 0.5
    if min(n) > 0:
        d = [k - (k + 1) * y * n[k] / n[k - 1] for k in (1, 2, 3)]
        if all(0 < d[k - 1] <= k for k in (1, 2, 3)):
            return {1: d[0], 2: d[1], 3: d[2]}
    return {1: y, 2: y, 3: y}


def kn_reference(lines, n, alphabet):
    """Interpolated modified Kneser-Ney with dicts, symbol by symbol: the slow textbook version."""
    raw = [Counter() for _ in range(n + 1)]  # raw[k][gram of length k]
    for line in lines:
        s = ["<s>"] * (n - 1) + list(line) + ["</s>"]
        for i in range(n - 1, len(s)):
            for k in range(1, n + 1):
                raw[k][tuple(s[i - k + 1 : i + 1])] += 1
    counts = [None] * (n + 1)
    counts[n] = raw[n]
    for k in range(n - 1, 0, -1):
        left = Counter(g[1:] for g in raw[k + 1])  # distinct left extensions of each k-gram
        counts[k] = Counter({g: (raw[k][g] if g[0] == "<s>" and k > 1 else left[g]) for g in raw[k]})
    disc, tot, mass = {}, {}, {}
    for k in range(1, n + 1):
        disc[k] = _discounts_reference(list(counts[k].values()))
        tot[k], mass[k] = defaultdict(float), defaultdict(float)
        for g, c in counts[k].items():
            tot[k][g[:-1]] += c
            mass[k][g[:-1]] += disc[k][min(c, 3)]
    vp = len(alphabet) + 1

    def prob(k, hist, w):  # hist: the k-1 symbols before w
        lower = 1.0 / vp if k == 1 else prob(k - 1, hist[1:], w)
        if hist not in tot[k]:
            return lower
        c = counts[k].get(hist + (w,), 0)
        d = disc[k][min(c, 3)] if c else 0.0
        return (c - d) / tot[k][hist] + mass[k][hist] / tot[k][hist] * lower

    def log_prob(line):
        s = ["<s>"] * (n - 1) + list(line) + ["</s>"]
        return sum(math.log(prob(n, tuple(s[i - n + 1 : i]), s[i])) for i in range(n - 1, len(s)))

    return log_prob


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_ngram_lm_matches_the_textbook_kneser_ney(n):
    alphabet = set("abcdegr")
    lm = NGramLM(n, alphabet).fit(CORPUS)
    ref = kn_reference(CORPUS, n, sorted(alphabet))
    np.testing.assert_allclose(lm.log_prob(QUERIES), [ref(q) for q in QUERIES], rtol=1e-12, atol=1e-12)


def test_unigram_value_by_hand():
    # counts a:2, b:1, end:2 -> n1 = 1, n2 = 2, no 3s: plain KN D = 1 / (1 + 2 * 2) = 0.2;
    # P(a) = (2 - 0.2) / 5 + (3 * 0.2 / 5) / 3 = 0.4, P(b) = 0.8 / 5 + 0.04 = 0.2, P(end) = 0.4
    lm = NGramLM(1).fit(["ab", "a"])
    np.testing.assert_allclose(lm.log_prob(["a", "b", ""]), np.log([0.4 * 0.4, 0.2 * 0.4, 0.4]), rtol=1e-12)
    assert lm.nll(["a", "b"]) == pytest.approx(-(2 * math.log(0.4) + math.log(0.2) + math.log(0.4)) / 4, rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_next_symbol_distributions_sum_to_one(n):
    lm = NGramLM(n, set("abcdegr")).fit(CORPUS)
    symbols = np.arange(1, lm._base)  # BOS and every character: seen and unseen histories
    hist = np.stack(np.meshgrid(*[symbols] * (n - 1), indexing="ij"), -1).reshape(-1, n - 1) if n > 1 else \
        np.zeros((1, 0), dtype=np.int64)
    p = lm.next_probs(hist)
    assert p.shape == (len(hist), lm._base) and (p > 0).sum(1).min() == lm._base - 1  # all but BOS
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)


def test_ngram_lm_learns_and_errors():
    lines = ["abab", "ab", "ababab"] * 20
    lm = NGramLM(3).fit(lines)
    assert lm.nll(["abab"]) < 0.3 and lm.nll(["bbaa"]) > 4.0  # 0.28 vs 4.67: "bb" was never seen
    with pytest.raises(ValueError, match="the character 'z' is not in the model's alphabet"):
        lm.nll(["az"])
    with pytest.raises(ValueError, match="call fit"):
        NGramLM(3).nll(["a"])
    with pytest.raises(ValueError, match="order must be at least 1"):
        NGramLM(0)
    with pytest.raises(ValueError, match="NGramLM.fit: no lines"):
        NGramLM(3).fit([])


def test_ngram_sample_is_seeded_and_respects_temperature():
    lm = NGramLM(3).fit(["ab"] * 30 + ["abc", "b"])
    state = torch.get_rng_state()
    a = ngram_sample(lm, 200, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)
    assert a == ngram_sample(lm, 200, 1.0, torch.Generator().manual_seed(0))
    assert a != ngram_sample(lm, 200, 1.0, torch.Generator().manual_seed(1))
    assert set("".join(a)) <= {"a", "b", "c"} and a.count("ab") > 100
    assert ngram_sample(lm, 50, 0.02, torch.Generator().manual_seed(0)) == ["ab"] * 50  # ~argmax
    hot = ngram_sample(lm, 200, 5.0, torch.Generator().manual_seed(0), max_len=6)
    assert max(len(s) for s in hot) <= 6 and hot.count("ab") < 50
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        ngram_sample(lm, 2)


def test_jsd_values():
    assert jsd(Counter("aab"), Counter("abaaba")) == pytest.approx(0.0, abs=1e-15)
    assert jsd(Counter("ab"), Counter("cd")) == pytest.approx(1.0, rel=1e-12)
    # P = (1, 0), Q = (1/2, 1/2), M = (3/4, 1/4): (log2(4/3) + (1/2 log2(2/3) + 1/2 log2 2)) / 2
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert jsd(Counter("a"), Counter("ab")) == pytest.approx(expected, rel=1e-12)
    assert jsd(Counter(), Counter("a")) == 1.0 and jsd(Counter(), Counter()) == 0.0
    assert ngram_counts(["abab", "b"], 2) == Counter({"ab": 2, "ba": 1})


def test_text_metrics_exact_shares():
    train = ["abc", "abd", "xyz", "abc"]
    hold = ["abe", "xyq", "abd"]  # "abd" is also a training line
    samples = ["abc", "abc", "abe", "newer", "abd"]
    m = text_metrics(samples, train, hold, n=3)
    assert list(m) == list(METRICS)
    assert m["copies"] == pytest.approx(3 / 5) and m["novel"] == pytest.approx(2 / 5)
    assert m["unique"] == pytest.approx(4 / 5) and m["novel_real"] == pytest.approx(1 / 5)
    # lengths 3, 3, 3, 5, 3 vs 3, 3, 3: the 5 is 2 away from everything, weight 1/5
    assert m["len_w1"] == pytest.approx(0.4, rel=1e-12)
    alphabet = set("abcdexyzqnwr")
    assert m["fwd_nll"] == pytest.approx(NGramLM(3, alphabet).fit(train).nll(samples), rel=1e-12)
    assert m["rev_nll"] == pytest.approx(NGramLM(3, alphabet).fit(samples).nll(hold), rel=1e-12)
    assert m["real_nll"] == pytest.approx(NGramLM(3, alphabet).fit(train).nll(hold), rel=1e-12)
    assert m["jsd_1"] == pytest.approx(jsd(Counter("abcabcabenewerabd"), Counter("abexyqabd")), rel=1e-12)
    assert m["jsd_mean"] == pytest.approx((m["jsd_1"] + m["jsd_2"] + m["jsd_3"]) / 3, rel=1e-12)
    with pytest.raises(ValueError, match="text_metrics: samples is empty"):
        text_metrics([], train, hold)


def test_text_metrics_rank_good_samples_above_noise():
    g = torch.Generator().manual_seed(0)
    words = ["".join("ab"[int(b)] for b in torch.randint(2, (int(k),), generator=g)) + "c"
             for k in torch.randint(1, 6, (600,), generator=g)]  # a language: [ab]{1,5}c
    train, hold = words[:400], words[400:]
    lm = NGramLM(4).fit(train)
    good = ngram_sample(lm, 300, 1.0, torch.Generator().manual_seed(1))
    noise = ["".join("abcxyz"[int(i)] for i in torch.randint(6, (6,), generator=g)) for _ in range(300)]
    mg, mn = text_metrics(good, train, hold, n=4), text_metrics(noise, train, hold, n=4)
    assert mg["fwd_nll"] < mg["real_nll"] * 1.2 < mn["fwd_nll"]
    assert mg["rev_nll"] < mn["rev_nll"] and mg["jsd_mean"] < 0.1 < mn["jsd_mean"]
    assert mg["len_w1"] < 0.5 < mn["len_w1"] and mn["copies"] == 0.0


def test_census_names_fit_and_score_in_seconds():
    pytest.importorskip("names")
    import time

    from ganforge.data.text import holdout_split, surnames

    train, hold = holdout_split(surnames(), 0.2, seed=0)
    start = time.perf_counter()
    lm = NGramLM(5).fit(train)  # 71,039 lines
    nll = lm.nll(hold[:20_000])
    assert time.perf_counter() - start < 20  # about 2 s on one busy core
    assert 2.0 < nll < 2.3  # 5-gram KN on held-out surnames: about 2.14 nats/char


TRAIN = [f"name{i:03d}" for i in range(200)]


def test_text_warnings_quiet_on_a_healthy_sample():
    samples = [f"new{i:03d}" for i in range(150)] + TRAIN[:50]  # all distinct, 25% copies
    assert text_warnings(samples, TRAIN) == []
    assert text_warnings([], TRAIN) == []


def test_text_warnings_name_the_string_a_sample_collapsed_onto():
    samples = ["smith"] * 30 + [f"new{i:03d}" for i in range(70)]  # 71 distinct of 100, but one is 30%
    (msg,) = text_warnings(samples, TRAIN)
    assert msg.startswith("Collapse onto a few strings: 'smith' is 30% of the samples.")
    assert "distinct" not in msg


def test_text_warnings_count_distinct_strings_and_name_the_empty_line():
    samples = ["", "ab", "ab", "cd"] * 25 + [""] * 100  # 3 distinct of 200: '' 62.5%, 'ab' 25%, 'cd' 12.5%
    (msg,) = text_warnings(samples, TRAIN)
    assert "only 3 distinct strings among the 200 samples (2%)" in msg
    assert "the empty line is 62%, 'ab' is 25%, 'cd' is 12% of the samples" in msg  # most frequent first


def test_text_warnings_flag_copying_over_half():
    copied = TRAIN[:60] + [f"new{i:03d}" for i in range(40)]  # 60% verbatim training lines
    (msg,) = text_warnings(copied, TRAIN)
    assert msg.startswith("Copying: 60% of the samples are training lines verbatim")
    assert text_warnings(TRAIN[:50] + [f"new{i:03d}" for i in range(50)], TRAIN) == []  # exactly half: quiet


def test_text_warnings_collapse_onto_a_training_line_gives_both():
    msgs = text_warnings(["name007"] * 90 + ["x"] * 10, TRAIN)
    assert [m.split(":")[0] for m in msgs] == ["Collapse onto a few strings", "Copying"]
    assert "'name007' is 90%" in msgs[0] and "Copying: 90%" in msgs[1]
