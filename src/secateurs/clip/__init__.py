"""Gradient clipping rules and weight clipping."""
