"""Fingerprint, planning, preprocessing (crop, resample, normalise) and its inverse."""
