"""gan-init: does a CycleGAN generator make a better start for a progressive noise-to-image GAN?"""

__version__ = "0.1.0"
