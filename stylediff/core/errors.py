"""Errors a user can cause. Each carries a one-line message that says what is wrong and how to fix it.

The CLI prints the message and exits with status 2; ``--debug`` shows the traceback.
"""


class StylediffError(Exception):
    """Base class of every error caused by user input, files or configuration."""


class ImageError(StylediffError):
    """An image is missing, unreadable, truncated or too small."""


class LayerError(StylediffError):
    """An unknown VGG-19 layer name."""


class LossError(StylediffError):
    """An unknown loss name or a bad loss parameter."""


class WeightsError(StylediffError):
    """A weight file or pretrained model is not where it should be."""


class ConfigError(StylediffError):
    """A bad argument or configuration value."""


class NumericalError(StylediffError):
    """A loss or gradient became NaN or infinite during a run."""


class OutputError(StylediffError):
    """An output path cannot be written."""


class ResourceError(StylediffError):
    """Out of (GPU) memory even after the batch was split down to one image."""
