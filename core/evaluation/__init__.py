"""Evaluation: metrics, triage, label issues, comparisons, imported predictions."""
