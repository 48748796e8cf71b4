"""fkd-hf: Fast Knowledge Distillation (FKD, Shen & Xing, ECCV 2022) on the Hugging Face stack.

The package is laid out by concern:

- :mod:`fkd_hf.labels`: the label-set format, soft-label kinds, crops, image sources, the label-set writer;
- :mod:`fkd_hf.models`: teachers (classifiers and encoders), students and their projection heads, precision, the
  teacher runner;
- :mod:`fkd_hf.generation`: ``fkd-hf generate``;
- :mod:`fkd_hf.training`: ``FKDConfig``, ``FKDTrainer``, the loss, the multi-crop datasets, ``build_trainer``,
  ``train``;
- :mod:`fkd_hf.hub`: pushing label sets and students, and their cards;
- :mod:`fkd_hf.demo` and :mod:`fkd_hf.cli`: ``fkd-hf demo`` and the command line.

Names are imported lazily: ``import fkd_hf`` loads neither torch nor transformers until one of them is used.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_namespace
from .version import __version__

_names, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "generation": ["GenerateConfig", "generate"],
        "labels": ["LabelSet", "LabelSetMetadata", "load_label_set", "reconstruct"],
        "models": ["load_teacher", "create_student", "load_projection_head"],
        "training": ["FKDConfig", "FKDTrainer", "build_trainer", "train", "soft_cross_entropy"],
        "hub": ["push_label_set", "push_student"],
        "cpu_memory": ["keep_freed_memory"],
    },
)
__all__ = ["__version__", *_names]

if TYPE_CHECKING:  # the names for type checkers and IDEs; at run time __getattr__ imports them
    from .cpu_memory import keep_freed_memory  # noqa: F401
    from .generation import GenerateConfig, generate  # noqa: F401
    from .hub import push_label_set, push_student  # noqa: F401
    from .labels import LabelSet, LabelSetMetadata, load_label_set, reconstruct  # noqa: F401
    from .models import create_student, load_projection_head, load_teacher  # noqa: F401
    from .training import FKDConfig, FKDTrainer, build_trainer, soft_cross_entropy, train  # noqa: F401
