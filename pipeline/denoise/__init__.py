"""Denoising autoencoders on the segmentation networks (``task: denoise``) and their use as
pretraining: a segmentation (or landmark) experiment with ``init_from`` starts from the
encoder, or the whole network, of a denoising experiment trained on every training image.
"""
