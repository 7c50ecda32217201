"""Gradient clipping in Keras 3, the second document's example (section 4.1) made to run.

The document calls `tf.keras.callbacks.GradientClipping(max_value=1.0)`, which does not exist:
Keras clips inside the optimizer (`clipnorm`, `clipvalue`, `global_clipnorm`). Its own
`gradient_clipping` function is global-norm clipping, `SGD(global_clipnorm=1.0)` in Keras.
Here the same network (10 inputs, Dense(10, relu), Dense(1)) fits scikit-learn's diabetes data
(442 patients, 10 features) with an adaptive rule from secateurs on top:

    KERAS_BACKEND=torch python examples/keras_clipping.py --out runs/keras-clip --rule autoclip

It writes `diabetes_clipping.keras` to --out and prints the test error and clipping statistics.
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

from secateurs.integrations.keras import AGC, AutoClip, ClippedOptimizer, ZClip

RULES = {
    "agc": lambda: AGC(0.05),
    "autoclip": lambda: AutoClip(percentile=10),
    "zclip": lambda: ZClip(z=2.5, warmup=25),
}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for diabetes_clipping.keras")
    ap.add_argument("--rule", choices=sorted(RULES), default="autoclip")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--max-norm", type=float, default=1.0, help="Keras global_clipnorm after it")
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
    # `lr=` is gone in Keras 3: learning_rate. The document's max_norm=1.0 is global_clipnorm.
    inner = keras.optimizers.SGD(learning_rate=0.01, global_clipnorm=args.max_norm)
    optimizer = ClippedOptimizer(inner, RULES[args.rule]())
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "diabetes_clipping.keras"
    model.save(path)
    test_mse = float(model.evaluate(x_test, y_test, verbose=0))
    kernels = [layer.kernel.numpy() for layer in model.layers]
    sparsity = float(sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels))
    summary = {
        "rule": repr(optimizer.rule),
        "test_mse": test_mse,
        "sparsity": sparsity,
        "clip": optimizer.clip_summary(),
        "model": str(path),
    }
    print(f"rule: {summary['rule']}, then global_clipnorm={args.max_norm}")
    print(f"test MSE (standardised target): {test_mse:.3f}")
    print(f"final sparsity: {sparsity:.3f} (clipping prunes nothing)")
    print("clipping:", json.dumps(summary["clip"]))
    print(f"saved {path}")
    assert np.isfinite(test_mse)
    return summary


if __name__ == "__main__":
    main()
