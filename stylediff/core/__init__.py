"""The base every other package stands on; imports nothing else of stylediff.

One-line user errors (:mod:`.errors`), name registries (:mod:`.registry`), atomic writes (:mod:`.io`),
images as RGB ``[0, 1]`` tensors (:mod:`.images`), per-image random streams (:mod:`.seeding`), the
sidecars' provenance (:mod:`.provenance`) and optional-install hints (:mod:`.extras`).
"""
