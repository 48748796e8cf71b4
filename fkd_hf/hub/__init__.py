"""The Hub: pushing label sets and students, and the cards that say how they were made."""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "push": ["push_label_set", "push_student"],
        "cards": ["StudentCardCallback", "StudentCardData", "label_set_card", "write_student_card"],
    },
)
