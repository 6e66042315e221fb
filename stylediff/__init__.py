"""stylediff: VGG-19 style losses for neural style transfer and style-guided diffusion."""

__version__ = "0.1.0"
