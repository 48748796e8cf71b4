"""fkd-hf: Fast Knowledge Distillation (FKD, Shen & Xing, ECCV 2022) on the Hugging Face stack."""

__version__ = "0.1.0"

from .cpu_memory import keep_freed_memory
from .crops import crops_to_pixels, replay_crop, sample_crops
from .generation import GenerateConfig, generate
from .label_set import LabelSet, LabelSetMetadata, label_features, load_label_set
from .soft_labels import KINDS, quantize, reconstruct
from .teachers import Teacher, load_teacher, resolve_class_map
from .cards import StudentCardCallback, StudentCardData, write_student_card
from .hub import push_label_set, push_student
from .join import LabelMismatchError, join_labels, open_label_set
from .loader import EvalDataset, FKDCropDataset, collate_crops, select_crops
from .loss import mix_crops, sample_mix, soft_cross_entropy
from .students import create_student, save_student, student_data_config
from .trainer import FKDTrainer
from .train import train
from .training_config import FKDConfig

__all__ = [
    "__version__",
    "KINDS",
    "GenerateConfig",
    "LabelSet",
    "LabelSetMetadata",
    "Teacher",
    "crops_to_pixels",
    "generate",
    "keep_freed_memory",
    "label_features",
    "load_label_set",
    "load_teacher",
    "quantize",
    "reconstruct",
    "replay_crop",
    "resolve_class_map",
    "sample_crops",
    "EvalDataset",
    "FKDConfig",
    "FKDCropDataset",
    "FKDTrainer",
    "LabelMismatchError",
    "collate_crops",
    "create_student",
    "join_labels",
    "mix_crops",
    "open_label_set",
    "sample_mix",
    "save_student",
    "select_crops",
    "soft_cross_entropy",
    "student_data_config",
    "train",
    "StudentCardCallback",
    "StudentCardData",
    "push_label_set",
    "push_student",
    "write_student_card",
]
