"""Inference for every task: one sliding-window stitcher (:mod:`.sliding_window`) and fold
ensembles (:mod:`.ensemble`); restoring the original grid is :mod:`pipeline.preprocessing.inverse`."""
