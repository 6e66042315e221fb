"""Every weight fetch and cache lookup.

The ImageNet VGG-16/AlexNet backbone files in ``TORCH_HOME`` (:mod:`.backbones`), their LPIPS
conversions (:mod:`.lpips_backbones`) and the Hugging Face cache (:mod:`.hub`).
"""
