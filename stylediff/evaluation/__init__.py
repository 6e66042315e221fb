"""Grading outputs.

The metric registry (:mod:`.metrics`), the networks that grade (:mod:`.scorer`), LPIPS (:mod:`.lpips`),
held-out style distances (:mod:`.heldout`), layout copying (:mod:`.layout_copy`), TFG's CLIP text score
(:mod:`.text_score`) and the metrics document of one output (:mod:`.document`).
"""
