"""The experiment grid, torch-free.

Experiments as specs (:mod:`.experiments`), the run-id grammar (:mod:`.runids`), the plan of one config
(:mod:`.plan`) and the config's image specs (:mod:`.image_specs`).
"""
