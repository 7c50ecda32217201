"""Hugging Face Trainer callbacks with the real Trainer: a tiny BERT (from its config, random
weights) reads the 64 pixels of each digit as 64 tokens (values 0..16)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from secateurs.clip import AGC  # noqa: E402
from secateurs.integrations.transformers import ClippingCallback, PruningCallback  # noqa: E402
from secateurs.prune import schedules  # noqa: E402
from secateurs.prune.mask import masked_modules  # noqa: E402
from secateurs.zoo.data import digits_arrays  # noqa: E402


class DigitTokens(Dataset):
    def __init__(self, n: int = 256) -> None:
        x, y = digits_arrays()
        self.ids = torch.from_numpy((x[:n] * 16).round()).long() + 1  # 0 is padding
        self.labels = torch.from_numpy(y[:n])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=18, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64, num_labels=10,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def _args(tmp_path, steps: int, **kw) -> TrainingArguments:
    base = dict(
        output_dir=str(tmp_path / "run"),
        max_steps=steps,
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        max_grad_norm=0.0,
        report_to="none",
        save_strategy="no",
        logging_steps=2,
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    return TrainingArguments(**(base | kw))


class Grabber(TrainerCallback):
    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.seen.append(
            {n: p.grad.detach().double().clone() for n, p in model.named_parameters()
             if p.grad is not None}
        )  # fmt: skip


def test_clipping_callback_matches_an_independent_agc(tmp_path):
    model = _model()
    before, after = Grabber(), Grabber()
    weights: list[dict[str, torch.Tensor]] = []

    class Weights(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            weights.append({n: p.detach().double().clone() for n, p in model.named_parameters()})

    clipping = ClippingCallback(AGC(0.01))
    trainer = Trainer(
        model=model,
        args=_args(tmp_path, 3),
        train_dataset=DigitTokens(),
        callbacks=[Weights(), before, clipping, after],
    )
    trainer.train()
    assert len(after.seen) == 3
    for g0, g1, w in zip(before.seen, after.seen, weights, strict=True):
        for name, g in g0.items():
            if name.startswith("classifier."):  # AGC leaves the final classifier alone
                assert torch.equal(g1[name], g)
                continue
            dims = tuple(range(1, g.ndim))
            gn = g.norm(dim=dims, keepdim=True) if g.ndim > 1 else g.norm()
            wn = w[name].norm(dim=dims, keepdim=True) if g.ndim > 1 else w[name].norm()
            coef = torch.clamp(0.01 * wn.clamp(min=1e-3) / gn.clamp(min=1e-6), max=1.0)
            torch.testing.assert_close(g1[name], g * coef, rtol=1e-5, atol=1e-10)
    history = [row for row in trainer.state.log_history if "clip/norm_before" in row]
    assert history and history[-1]["clip/clip_rate"] == clipping.monitor.summary()["clip_rate"]


def test_clipping_callback_refuses_a_trainer_that_also_clips(tmp_path):
    with pytest.raises(ValueError, match="max_grad_norm=0"):
        Trainer(
            model=_model(),
            args=_args(tmp_path, 1, max_grad_norm=1.0),
            train_dataset=DigitTokens(32),
            callbacks=[ClippingCallback(AGC())],
        )


def test_pruning_callback_result_saves_and_reloads_with_from_pretrained(tmp_path):
    model = _model()
    pruning = PruningCallback(schedules.schedule("cubic", target=0.6, end=4, frequency=2))
    args = _args(tmp_path, 6, save_strategy="steps", save_steps=3)
    trainer = Trainer(model=model, args=args, train_dataset=DigitTokens(), callbacks=[pruning])
    trainer.train()
    assert not masked_modules(model)
    linears = [
        m for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n != "classifier"
    ]  # fmt: skip
    total = sum(m.weight.numel() for m in linears)
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    assert zeros == round(0.6 * total)  # global magnitude over every Linear but the head
    assert int((model.classifier.weight == 0).sum()) == 0
    out = tmp_path / "pruned"
    trainer.save_model(str(out))
    reloaded = BertForSequenceClassification.from_pretrained(str(out))
    mine, theirs = model.state_dict(), reloaded.state_dict()
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), key
    # the checkpoint written mid-training (masks live) also loads into the plain class
    mid = BertForSequenceClassification.from_pretrained(str(tmp_path / "run/checkpoint-3"))
    weight = mid.bert.encoder.layer[0].attention.self.query.weight
    assert 0 < int((weight == 0).sum()) < weight.numel()
