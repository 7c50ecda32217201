"""Sample-quality scores against float64 references; the text corpus and its split."""

import numpy as np
import pytest
import scipy.linalg
import torch

from secateurs.zoo.gan_score import classifier_score, digit_scorer, frechet_distance, gaussian_fit
from secateurs.zoo.text import VOCAB, char_corpus, decode, encode, split_topics, topic_texts


def _reference_fd(mu1, c1, mu2, c2):
    root = scipy.linalg.sqrtm(c1 @ c2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * np.real(root)))


def test_frechet_distance_matches_scipy_reference():
    rng = np.random.default_rng(0)
    for d in (1, 3, 16):
        a = rng.normal(size=(200, d)) @ rng.normal(size=(d, d))
        b = rng.normal(size=(300, d)) * 2 + 1
        mu1, c1 = gaussian_fit(a)
        mu2, c2 = gaussian_fit(b)
        assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(
            _reference_fd(mu1, c1, mu2, c2), rel=1e-7, abs=1e-9
        )


def test_frechet_distance_exact_cases():
    c = np.diag([1.0, 4.0])
    assert frechet_distance(np.zeros(2), c, np.zeros(2), c) == pytest.approx(0.0, abs=1e-12)
    # pure shift: ||d||^2
    assert frechet_distance(np.zeros(2), c, np.array([3.0, 4.0]), c) == pytest.approx(25.0)
    # 1-D: (s1 - s2)^2 for standard deviations s1, s2
    assert frechet_distance(
        np.zeros(1), np.array([[4.0]]), np.zeros(1), np.array([[9.0]])
    ) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(2), c, np.zeros(3), np.eye(3))


def test_classifier_score_bounds():
    one_hot = np.eye(10)
    assert classifier_score(one_hot) == pytest.approx(10.0)
    same = np.tile(np.eye(10)[3], (50, 1))
    assert classifier_score(same) == pytest.approx(1.0)
    uniform = np.full((7, 10), 0.1)
    assert classifier_score(uniform) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        classifier_score(np.zeros((0, 10)))


def test_digit_scorer_ranks_real_digits_above_noise():
    from secateurs.zoo.data import digits

    scorer = digit_scorer()
    assert scorer.test_accuracy > 0.9
    real = scorer.score(digits(image=True).x_train)
    noise = scorer.score(torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert real["frechet"] < 5 < 50 < noise["frechet"]
    assert real["class_score"] > 8 > noise["class_score"]
    assert scorer.score(torch.full((10, 64), float("nan")))["frechet"] == float("inf")
    with pytest.raises(ValueError, match="8x8"):
        scorer.features(torch.zeros(3, 10))


def test_encode_decode_round_trip_and_unknown():
    text = "def f(x):\n    return x  # ok"
    assert decode(encode(text)) == text
    assert decode(encode("a\u00dfb")) == "a\ufffdb"
    assert len(VOCAB) == 97


def test_topics_split_is_disjoint_and_covers_everything():
    parts = split_topics()
    names = [n for p in parts.values() for n in p]
    assert sorted(names) == sorted(topic_texts()) and len(set(names)) == len(names)
    assert len(parts["train"]) > 4 * (len(parts["val"]) + len(parts["test"])) / 2
    with pytest.raises(ValueError, match="every"):
        split_topics(2)


def test_char_corpus_windows_are_consecutive_text():
    corpus = char_corpus(seq_len=32)
    w = corpus.train
    assert w.shape[1] == 33 and corpus.val.shape[1] == 33
    # consecutive windows overlap by one character: the last target is the next first input
    assert torch.equal(w[:-1, -1], w[1:, 0])
    # the training text really is English prose from the docs
    assert "the" in decode(w[:20].reshape(-1))
    with pytest.raises(ValueError, match="seq_len"):
        char_corpus(seq_len=1)


def test_paragraphs_are_whole_passages_in_a_seeded_order() -> None:
    from secateurs.zoo.text import paragraphs

    paras = paragraphs(min_words=12, seed=0)
    assert paras == paragraphs(min_words=12, seed=0) != paragraphs(min_words=12, seed=1)
    # exactly the blank-line-separated pieces of the topics with >= 12 words, whitespace
    # collapsed, each once per occurrence: only the order is the seed's
    pieces = [" ".join(p.split()) for t in topic_texts().values() for p in t.split("\n\n")]
    assert sorted(paras) == sorted(p for p in pieces if len(p.split()) >= 12)
    assert len(paragraphs(min_words=40)) < len(paras)
