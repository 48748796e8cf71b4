"""fkd-hf: Fast Knowledge Distillation (FKD, Shen & Xing, ECCV 2022) on the Hugging Face stack."""

__version__ = "0.1.0"

from .crops import crops_to_pixels, replay_crop, sample_crops
from .generation import GenerateConfig, generate
from .label_set import LabelSet, LabelSetMetadata, label_features, load_label_set
from .soft_labels import KINDS, quantize, reconstruct
from .teachers import Teacher, load_teacher, resolve_class_map

__all__ = [
    "__version__",
    "KINDS",
    "GenerateConfig",
    "LabelSet",
    "LabelSetMetadata",
    "Teacher",
    "crops_to_pixels",
    "generate",
    "label_features",
    "load_label_set",
    "load_teacher",
    "quantize",
    "reconstruct",
    "replay_crop",
    "resolve_class_map",
    "sample_crops",
]
