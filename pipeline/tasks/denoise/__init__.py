"""Denoising autoencoders on the segmentation networks (``task: denoise``), and their use as
pretraining: another experiment with ``init_from`` starts from the encoder, or the whole
network, of a denoising experiment trained on every training image
(:mod:`pipeline.training.init_from`)."""

from pipeline.tasks.base import task_of_modules

TASK = task_of_modules("denoise", ".npz", summarize="pipeline.tasks.denoise.evaluate:summarize", training="DenoiseTraining")
