"""Attention Distillation's optimisation engine (``attention_distillation`` with ``ad_mode optimize``).

The reference's style transfer and texture synthesis protocol, ``ADPipeline.optimize``
(xugao97/AttentionDistillation ``pipeline_sd.py:281-368``), which is not a sampling loop.

A clean latent (the content's posterior mean, or noise from each image's generator without a content)
is optimised by one Adam (learning rate = the method's ``scale``) kept over the whole run; at each
timestep t of the scheduler's n-step schedule (the reference's DDIM, 200 steps for transfer: 996 … 1;
300 for texture) the UNet reads the clean style and content latents and the current latent at t (no
noise is added anywhere), and Adam takes ``iterations`` steps (the reference's 1) against the method's
loss (:func:`~.methods.attention_distillation.distillation_loss`). The UNet only extracts features:
its output is dropped and no scheduler step is taken. The result is the decoded latent.

:class:`DistillationOptimizer` has the sampler's interface (constructor, call, :class:`SampleOutput`,
the out-of-memory split), so ``stylediff sample`` writes its outputs and sidecars as for any method.
Deviations as the method's: the loss summed over the batch's images (each image's own), noise starts
from each image's generator (the reference: the global generator after ``set_seed``), fp32 by default.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from ..core.errors import ConfigError, NumericalError
from ..core.seeding import ImageStreams, image_generators
from .methods.attention_distillation import AttentionDistillation, optimise
from .sampler import GuidedSampler, HistoryRecorder, SampleOutput


class DistillationOptimizer(GuidedSampler):
    """``ADPipeline.optimize`` behind the :class:`GuidedSampler` interface.

    Called as the sampler is (``num_inference_steps`` is the schedule the optimisation walks; ``eta`` is
    not used).

    Args:
        model: a model adapter.
        scheduler: the scheduler whose timesteps the UNet reads the latent at.
        objective: not read (the method's loss is the UNet's attention).
        method: an :class:`AttentionDistillation` (its ``scale`` is Adam's learning rate; 0 returns the
            start decoded).
        guidance_size: as the sampler's.
        references: ``style`` (needed) and the images the method reads.

    Raises:
        ConfigError: another method, or no style reference.
    """

    def __init__(self, model, scheduler, objective=None, method=None, guidance_size=None, references=None):
        if not isinstance(method, AttentionDistillation):
            raise ConfigError("the optimisation engine runs the attention_distillation method only")
        super().__init__(model, scheduler, objective, method, guidance_size, references)
        if "style" not in self.references:
            raise ConfigError("attention_distillation needs a style reference image")

    def _sample(
        self, seeds, num_inference_steps, eta, precision, progress, description, callback, content_start=None
    ) -> SampleOutput:
        from diffusers.utils.torch_utils import randn_tensor

        method = self.method
        if content_start is not None and content_start.kind != "sdedit":
            raise ConfigError("ad_mode optimize starts from the content itself: it takes no --start inversion")
        # 1. the start: the clean content latent (pipeline_sd.py:314-317) or noise (:309)
        reference = self._references(content_start)
        if content_start is not None:
            z = reference("content").float().expand(len(seeds), *self.sample_shape).clone()
        else:
            generators = image_generators(seeds)
            generator = generators[0] if len(generators) == 1 else generators
            z = randn_tensor((len(seeds), *self.sample_shape), generator=generator, device=self.device)
        # 2. the timesteps, the layers and one Adam for the whole run (:326-331)
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        layers = self.model.attention_layers(method.attention_layers)
        attention = self._attention(precision)
        z.requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=method.scale)
        method._content = content_start is not None
        recorder = HistoryRecorder()
        step_seconds: list[float] = []
        began = time.perf_counter()
        bar = tqdm(timesteps, desc=description, disable=not progress, leave=False, dynamic_ncols=True)
        for index, t in enumerate(bar if method.scale > 0 else []):
            tick = time.perf_counter()
            # 3. the clean references' attention at t (:335-346), then the iterations (:347-364)
            with torch.no_grad():
                style = attention(reference("style"), t, layers)
                content = attention(reference("content"), t, layers) if content_start is not None else None
            loss = optimise(
                z,
                optimizer,
                method.iterations,
                lambda latent, t=t: attention(latent, t, layers),
                style,
                content,
                method.query_weight,
                method.attn_scale,
            )
            step_seconds.append(time.perf_counter() - tick)
            info = {"step": index + 1, "t": int(t), "guided": True, "ad_loss": loss.tolist()}
            recorder(info)
            if callback is not None:
                callback({**info, "x": z.detach().clone()})  # Adam updates z in place
        bar.close()
        seconds = time.perf_counter() - began
        z = z.detach()
        if not torch.isfinite(z).all():
            raise NumericalError("attention distillation produced non-finite latents: lower the scale (learning rate)")
        # 4. the images (latent2image, :365) and their final loss
        start = {
            "start": "content" if content_start is not None else "noise",
            "t_start": 0,
            "first_t": int(timesteps[0]),
        }
        return self._output(z.to(self.model.dtype), seeds, ImageStreams(seeds), seconds, step_seconds, recorder, start)


def engine_for(method) -> type[GuidedSampler]:
    """The engine that runs ``method``.

    Args:
        method: a guidance method.

    Returns:
        :class:`GuidedSampler`, or :class:`DistillationOptimizer` for ``ad_mode optimize``.
    """
    return DistillationOptimizer if getattr(method, "ad_mode", "sample") == "optimize" else GuidedSampler
