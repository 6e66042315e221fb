"""The random streams of a run: one generator per image and purpose, seeded from the image's seed.

Every random number an image's run draws comes from a generator seeded from that image's seed, one
stream per purpose, so an image is the same alone or in a batch and the run's seed reaches every draw.

The sampler draws its per-image noise (recurrence, Monte-Carlo variance) from an
:class:`ImageStreams`; a loss that draws random numbers (``sliced_wasserstein``'s projections) is
called once for a whole batch, so the caller makes the streams *active* around the call
(:func:`drawing_from`) and the loss takes each image's draws from :func:`active_streams`. The
sampler does this at every objective call, the optimisation engine for a whole run (seed =
``--seed``), the metrics before each image (a fixed seed: every image graded with the same draws).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Iterator, Sequence

import torch

from .errors import ConfigError


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose (``recurrence``, ``variance0``, ``sliced_wasserstein``…) of the image with ``seed``.

    Args:
        seed: the image's seed.
        purpose: what the stream draws for.

    Returns:
        A non-negative 63-bit seed from the sha256 of both.
    """
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little") & (2**63 - 1)


def image_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image seed (as diffusers draws from a list of generators).

    Args:
        seeds: one seed per image.

    Returns:
        The seeded generators, in order.
    """
    return [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]


class ImageStreams:
    """Per-image random streams of a batch.

    Purpose ``p`` of image ``i`` draws from a CPU generator seeded ``derived_seed(seeds[i], p)``, created
    at its first draw and advanced by every later one.

    Args:
        seeds: one seed per image of the batch.
    """

    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(seed) for seed in seeds]
        self._generators: dict[str, list[torch.Generator]] = {}

    def normal(self, shape: tuple[int, ...], purpose: str) -> torch.Tensor:
        """One standard normal draw of ``shape`` per image.

        Args:
            shape: the shape of one image's draw.
            purpose: the stream to draw from.

        Returns:
            ``(N, *shape)`` float32 on the CPU.
        """
        if purpose not in self._generators:
            self._generators[purpose] = image_generators([derived_seed(s, purpose) for s in self.seeds])
        return torch.cat([torch.randn((1, *shape), generator=g) for g in self._generators[purpose]])

    def check_tiles(self, rows: int) -> None:
        """Check that a batch of ``rows`` is whole tiles of the N images.

        Row j is image j mod N, as a method's Monte-Carlo copies are laid out, each row drawing what its
        image draws.

        Args:
            rows: the batch size a loss is called with.

        Raises:
            ConfigError: ``rows`` is not a multiple of N.
        """
        if rows % len(self.seeds):
            raise ConfigError(
                f"a batch of {rows} rows is not whole tiles of the {len(self.seeds)} images "
                "whose random streams are active"
            )


_ACTIVE: contextvars.ContextVar[ImageStreams | None] = contextvars.ContextVar("stylediff_streams", default=None)


@contextlib.contextmanager
def drawing_from(streams: ImageStreams) -> Iterator[ImageStreams]:
    """Make ``streams`` the ones losses draw from inside the ``with`` block.

    Args:
        streams: the batch's streams.

    Yields:
        ``streams``.
    """
    token = _ACTIVE.set(streams)
    try:
        yield streams
    finally:
        _ACTIVE.reset(token)


def active_streams() -> ImageStreams | None:
    """The streams of the innermost :func:`drawing_from`, or None outside any."""
    return _ACTIVE.get()
