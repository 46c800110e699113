"""Datasets, KADID-protocol synthesis, baselines and correlation evaluation."""
