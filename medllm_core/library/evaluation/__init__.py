"""Evaluation of the base model and every trained variant (multiple choice, statistics)."""
