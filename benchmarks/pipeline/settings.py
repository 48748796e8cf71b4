"""The pipeline benchmark's fixed settings: reference rates, photo and label shapes, and each method's layout."""

from __future__ import annotations

A100_CROPS_PER_S = 2470  # NVIDIA's ResNet-50 training reference, one A100-80GB, AMP
TEACHER_CROPS_PER_S = {"efficientnet-lite0": 3000, "resnet50": 2500}  # assumed: one A100, 224 px, AMP
PHOTO_SIZE, TEACHER = (500, 375), (224, "bicubic")  # ImageNet's typical photo; a timm teacher's input and resize
REENCODED, AS_IS = "500x375-q90", "as-is"  # --photo-bytes: re-encoded photos (the default), or the photos' own bytes
MAP_SIZE, MAP_K = 15, 5  # ReLabel's released ImageNet maps
KIND = "marginal_smoothing"  # generation's default kind
# method -> (crops per decode: "m", "1" or "R"; its ops, which give D and C, or None where not measured apart)
LAYOUT = {
    "plain": ("1", "torchvision"),
    "plain_fast": ("1", "tensor"),
    "relabel": ("1", "tensor"),
    "relabel_pil": ("1", "torchvision"),
    "fkd": ("m", "tensor"),
    "fkd_pil": ("m", "pil"),
    "fkd_official": ("m", "official"),
    "fkd_spread": ("m", "tensor"),
    "fkd_device": ("m", "device"),
    "ffcv": ("1", None),
    "generation": ("R", "tensor"),
    "generation_pil": ("R", "pil"),
}
DECODER = {"device": "tensor", "official": "torchvision"}  # ops -> D's decoder, where not the ops' own name
