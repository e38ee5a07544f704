"""Quality control of inputs: how far a case lies from the cases the model was trained on.

:mod:`pipeline.qc.inputs` derives the training ranges from the dataset fingerprint (and the
training cases' check files, where they are at hand) and flags a case's spacing, field of
view, orientation, channel count and intensity percentiles outside them;
:mod:`pipeline.qc.table` finds the fingerprint of a model folder and writes the flags as
``qc.tsv``. Flags are warnings: nothing here stops a prediction.
"""
