"""Readers for the real file formats, slice datasets, splits and simulation."""
