"""Demo models and embedded data sets (no downloads).

`TASKS` names every demo task ("mlp", "cnn", "vit", "lstm", "charlm", "wgan", "dcgan"):
model, data, loss, metric and training budget together (see `secateurs.zoo.registry`).
"""

from secateurs.zoo.charlm import CharLM, char_lm, lm_loss, perplexity
from secateurs.zoo.data import Split, digits, digits_arrays
from secateurs.zoo.gan import GAN, dcgan, sample, train_gan, wgan
from secateurs.zoo.gan_score import DigitScorer, classifier_score, digit_scorer, frechet_distance
from secateurs.zoo.models import MLP, ResCNN, ResidualBlock, mlp, rescnn
from secateurs.zoo.recurrent import RowRNN, row_gru, row_lstm
from secateurs.zoo.registry import TASKS, Budget, Task, TaskData, get_task
from secateurs.zoo.text import char_corpus
from secateurs.zoo.vit import TinyViT, tiny_vit

__all__ = [
    "GAN",
    "MLP",
    "TASKS",
    "Budget",
    "CharLM",
    "DigitScorer",
    "ResCNN",
    "ResidualBlock",
    "RowRNN",
    "Split",
    "Task",
    "TaskData",
    "TinyViT",
    "char_corpus",
    "char_lm",
    "classifier_score",
    "dcgan",
    "digit_scorer",
    "digits",
    "digits_arrays",
    "frechet_distance",
    "get_task",
    "lm_loss",
    "mlp",
    "perplexity",
    "rescnn",
    "row_gru",
    "row_lstm",
    "sample",
    "tiny_vit",
    "train_gan",
    "wgan",
]
