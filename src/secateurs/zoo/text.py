"""Real English text shipped with Python: the help topics in `pydoc_data.topics`.

About 465,000 characters of the language reference. Documents (topics) are split into
train / validation / test by a fixed rule on their sorted names, so no topic's text leaks
from training into evaluation. Characters map to a fixed vocabulary (newline, printable
ASCII, one "unknown" symbol), so the vocabulary never depends on the split.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

_CHARS = "\n" + "".join(chr(c) for c in range(32, 127))
VOCAB: tuple[str, ...] = (*_CHARS, "\ufffd")  # the last symbol stands for any other character
UNKNOWN = len(VOCAB) - 1
_INDEX = {c: i for i, c in enumerate(_CHARS)}


def encode(text: str) -> torch.Tensor:
    """Character ids (int64) of `text`; characters outside the vocabulary map to UNKNOWN."""
    return torch.tensor([_INDEX.get(c, UNKNOWN) for c in text], dtype=torch.int64)


def decode(ids: torch.Tensor | list[int]) -> str:
    """Inverse of `encode` (unknown characters come back as U+FFFD)."""
    values = ids.tolist() if isinstance(ids, torch.Tensor) else ids
    return "".join(VOCAB[i] for i in values)


def topic_texts() -> dict[str, str]:
    """All help topics as {name: text}, in sorted name order."""
    from pydoc_data import topics

    return {name: topics.topics[name] for name in sorted(topics.topics)}


def paragraphs(min_words: int = 12, seed: int = 0) -> list[str]:
    """The topics' paragraphs (blank-line separated, whitespace collapsed) of at least
    `min_words` words, in an order shuffled by `seed`: passages for sentence encoders."""
    import random

    out = [
        " ".join(p.split())
        for text in topic_texts().values()
        for p in text.split("\n\n")
        if len(p.split()) >= min_words
    ]
    random.Random(seed).shuffle(out)
    return out


def split_topics(every: int = 10) -> dict[str, list[str]]:
    """Topic names per split: of each run of `every` sorted topics, one goes to validation
    and one to test; the rest train."""
    if every < 3:
        raise ValueError(f"every must be >= 3 so that training keeps most topics, got {every}")
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i, name in enumerate(topic_texts()):
        part = "val" if i % every == 3 else "test" if i % every == 7 else "train"
        out[part].append(name)
    return out


@dataclass(frozen=True)
class TextSplit:
    """Windows of `seq_len + 1` character ids per split.

    Inputs are `w[:, :-1]` and next-character targets `w[:, 1:]`.
    """

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    seq_len: int


def _windows(ids: torch.Tensor, seq_len: int) -> torch.Tensor:
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"text of {len(ids)} characters is too short for seq_len={seq_len}")
    # consecutive windows share their boundary character: target of one = input of the next
    return ids[: n * seq_len + 1].unfold(0, seq_len + 1, seq_len)


@functools.lru_cache(maxsize=4)
def char_corpus(seq_len: int = 64, every: int = 10) -> TextSplit:
    """Character windows of the pydoc topics, split by topic (see `split_topics`).

    Cached: every call with the same arguments returns the same (read-only) tensors.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be >= 2, got {seq_len}")
    texts = topic_texts()
    parts = split_topics(every)
    joined = {k: "\n\n".join(texts[name] for name in names) for k, names in parts.items()}
    return TextSplit(
        train=_windows(encode(joined["train"]), seq_len),
        val=_windows(encode(joined["val"]), seq_len),
        test=_windows(encode(joined["test"]), seq_len),
        seq_len=seq_len,
    )


__all__ = [
    "UNKNOWN",
    "VOCAB",
    "TextSplit",
    "char_corpus",
    "decode",
    "encode",
    "split_topics",
    "topic_texts",
]
