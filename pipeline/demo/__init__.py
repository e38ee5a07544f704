"""Bundled demo datasets, generated from files that ship inside PyPI wheels (no download)."""
