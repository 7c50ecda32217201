"""Pruning in Keras 3, the second document's example (section 4.2) made to run.

The document calls `layer.get_pruned()`, which no Keras layer has, and its formula
`w * max(0, a - |w|)` would zero the large weights; its text asks to remove the weights that
are zero or very small. TF Model Optimization, the usual Keras pruning library, refuses Keras 3
models. Here the same network (10 inputs, Dense(10, relu), Dense(1)) fits scikit-learn's
diabetes data while secateurs' callback removes the smallest weights on a TF-MOT
PolynomialDecay schedule; the final layer stays dense (pass exclude=[] to prune it too):

    KERAS_BACKEND=torch python examples/keras_pruning.py --out runs/keras-prune --sparsity 0.5

It writes `diabetes_pruned.keras` to --out (a plain Keras model, zeros in place) and prints
the sparsity, the test error before and after, and clipping statistics.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

from secateurs.integrations.keras import (
    AutoClip,
    ClippedOptimizer,
    PolynomialDecay,
    PruningCallback,
)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for diabetes_pruned.keras")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=20, help="half dense, half pruning")
    args = ap.parse_args(argv)

    keras.utils.set_random_seed(0)
    x, y = load_diabetes(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    y = ((y - y.mean()) / y.std()).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)

    model = keras.Sequential(
        [
            keras.Input(shape=(10,)),
            keras.layers.Dense(10, activation="relu"),
            keras.layers.Dense(1, activation="linear"),
        ]
    )
    optimizer = ClippedOptimizer(keras.optimizers.SGD(learning_rate=0.01), AutoClip(10))
    model.compile(optimizer=optimizer, loss="mse")
    half = max(1, args.epochs // 2)
    model.fit(x_train, y_train, epochs=half, batch_size=32, verbose=0)
    dense_mse = float(model.evaluate(x_test, y_test, verbose=0))

    steps = half * int(np.ceil(len(x_train) / 32))
    begin = int(optimizer.iterations.numpy())
    schedule = PolynomialDecay(
        0.0,
        args.sparsity,
        begin_step=begin,
        end_step=begin + steps // 2,
        frequency=max(1, steps // 20),
    )
    pruning = PruningCallback(schedule)
    model.fit(
        x_train, y_train, epochs=args.epochs - half, batch_size=32, verbose=0, callbacks=[pruning]
    )
    model = pruning.strip_pruning()

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "diabetes_pruned.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    pruned_mse = float(reloaded.evaluate(x_test, y_test, verbose=0))
    kernel = reloaded.layers[0].kernel.numpy()
    summary = {
        "sparsity": float((kernel == 0).mean()),
        "test_mse_dense": dense_mse,
        "test_mse_pruned": pruned_mse,
        "events": pruning.events,
        "clip": optimizer.clip_summary(),
        "model": str(path),
    }
    print(
        f"final sparsity of the hidden layer: {summary['sparsity']:.3f} "
        f"({int((kernel == 0).sum())} of {kernel.size} weights are 0)"
    )
    print(f"test MSE (standardised target): dense {dense_mse:.3f} -> pruned {pruned_mse:.3f}")
    print("clipping:", json.dumps(summary["clip"]))
    print(f"saved {path} (reloaded: zeros in place)")
    return summary


if __name__ == "__main__":
    main()
