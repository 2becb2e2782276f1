"""inpaint-bench: train and score inpainting models from their authors' code under one contract."""

__version__ = "0.1.0"
