"""Evaluation: metrics per file in the fastMRI or CMRxRecon convention, tables."""
