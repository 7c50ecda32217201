"""Demo models and embedded data sets (no downloads)."""

from secateurs.zoo.data import Split, digits, digits_arrays
from secateurs.zoo.models import MLP, ResCNN, ResidualBlock, mlp, rescnn

__all__ = ["MLP", "ResCNN", "ResidualBlock", "Split", "digits", "digits_arrays", "mlp", "rescnn"]
