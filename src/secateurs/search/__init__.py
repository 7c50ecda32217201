"""Choosing thresholds by validation: sensitivity scans, cross-validation, studies."""
