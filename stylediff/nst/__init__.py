"""Neural style transfer by optimisation: the Gram matrix (:mod:`.gram`), the style and content losses
(:mod:`.losses`, :data:`~.losses.STYLE_LOSSES`) and the engine behind inversion, texture synthesis and style
transfer (:mod:`.optimize`)."""
