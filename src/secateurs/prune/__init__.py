"""Pruning: unstructured, N:M and structured."""
