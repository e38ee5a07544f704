"""Denoising autoencoders on the segmentation networks (``task: denoise``), and their use as
pretraining: another experiment with ``init_from`` starts from the encoder, or the whole
network, of a denoising experiment trained on every training image
(:mod:`pipeline.training.init_from`)."""

from pipeline.tasks.base import task_of_modules

TASK = task_of_modules(
    "denoise",
    ".npz",
    settings_key="denoise",
    training_keys=("model", "denoise", "training"),
    prediction_keys=("denoise",),
    package="pipeline.tasks.denoise",
    summarize="pipeline.tasks.denoise.evaluate:summarize",
    training="DenoiseTraining",
)
