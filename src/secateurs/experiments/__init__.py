"""Experiments behind the `secateurs demo` and `secateurs compare` commands.

- `compare`: gradient clipping vs pruning vs both on every demo model, over seeds;
- `demo`: the whole job on the digits CNN (clip, scan, cross-validate, prune, export);
- `exploding`: Pascanu et al.'s exploding-gradient experiment (`secateurs demo clipping`);
- `tracking` / `scorecard`: what every run records and measures.
"""
