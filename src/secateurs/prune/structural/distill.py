"""Knowledge distillation from the dense model while fine-tuning the pruned one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from secateurs._inputs import call_model
from secateurs.train import fit


class DistillLoss:
    """``alpha * distillation + (1 - alpha) * task loss`` on (student output, (target, teacher)).

    `kind`: ``"kl"`` (soft targets at `temperature`, scaled by T², for logits), ``"mse"`` or
    ``"cosine"`` (1 - cosine similarity, for embeddings). `output_fn` picks the tensor out of a
    model's output (e.g. ``lambda o: o["sentence_embedding"]``).
    """

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        temperature: float = 2.0,
        kind: str = "kl",
        task_loss: Callable[[Any, Any], torch.Tensor] | None = None,
        output_fn: Callable[[Any], torch.Tensor] | None = None,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if kind not in ("kl", "mse", "cosine"):
            raise ValueError(f"kind must be 'kl', 'mse' or 'cosine', got {kind!r}")
        self.alpha, self.temperature, self.kind = float(alpha), float(temperature), kind
        self.task_loss = task_loss or nn.functional.cross_entropy
        self.output_fn = output_fn or (lambda o: o)

    def distillation(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if self.kind == "mse":
            return nn.functional.mse_loss(student, teacher)
        if self.kind == "cosine":
            return (1 - nn.functional.cosine_similarity(student, teacher, dim=-1)).mean()
        t = self.temperature
        return nn.functional.kl_div(
            nn.functional.log_softmax(student / t, dim=-1),
            nn.functional.log_softmax(teacher / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        ) * (t * t)

    def __call__(self, output: Any, target: tuple[Any, torch.Tensor]) -> torch.Tensor:
        y, teacher = target
        student = self.output_fn(output)
        loss = self.distillation(student, teacher)
        if self.alpha < 1.0:
            loss = self.alpha * loss + (1 - self.alpha) * self.task_loss(student, y)
        return loss


class _WithTeacher:
    """Batches ``(x, y)`` -> ``(x, (y, teacher_output))``; batches without y get y=None."""

    def __init__(self, data: Iterable, teacher: nn.Module, output_fn: Callable) -> None:
        self.data, self.teacher, self.output_fn = data, teacher, output_fn

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[Any, tuple[Any, torch.Tensor]]]:
        for batch in self.data:
            x, y = (
                (batch[0], batch[1])
                if isinstance(batch, tuple | list) and len(batch) == 2
                else (batch, None)
            )
            with torch.no_grad():
                teacher_out = self.output_fn(call_model(self.teacher, x)).detach()
            yield x, (y, teacher_out)


def distill(
    student: nn.Module,
    teacher: nn.Module,
    data: Iterable,
    *,
    alpha: float = 0.5,
    temperature: float = 2.0,
    kind: str = "kl",
    task_loss: Callable[[Any, Any], torch.Tensor] | None = None,
    output_fn: Callable[[Any], torch.Tensor] | None = None,
    **fit_kwargs: Any,
):
    """Fine-tune `student` (the pruned model) towards `teacher` (the dense one) with `fit`.

    `data` yields ``(inputs, targets)`` (or inputs alone when ``alpha=1``); other keyword
    arguments go to `secateurs.train.fit` (``lr``, ``epochs``, ``max_steps``, ``clip``, ...).
    """
    loss = DistillLoss(
        alpha=alpha, temperature=temperature, kind=kind, task_loss=task_loss, output_fn=output_fn
    )
    was_training = teacher.training
    teacher.eval()
    try:
        return fit(student, _WithTeacher(data, teacher, loss.output_fn), loss_fn=loss, **fit_kwargs)
    finally:
        teacher.train(was_training)
