"""The Hub: pushing label sets and students, and the cards that say how they were made.

Nothing here imports torch or transformers: the Trainer callback that fills a student's card during training is
:class:`fkd_hf.training.StudentCardCallback`.
"""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "push": ["push_label_set", "push_student"],
        "label_card": ["label_set_card", "write_label_set_card"],
        "student_info": ["StudentInfo"],
        "model_card": ["student_card", "write_student_card"],
    },
)
