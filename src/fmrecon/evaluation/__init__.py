"""Evaluation: metrics per file in a scoring convention (fastMRI, CMRxRecon, full field
of view), tables with the scoring fingerprint."""
