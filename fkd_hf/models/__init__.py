"""Teachers (classifiers and encoders), students and their projection heads, image embeddings, precision and the
teacher runner: the models FKD distils from and into."""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "teachers": ["Teacher", "load_teacher", "resolve_class_map"],
        "teacher_runner": ["TeacherRunner"],
        "students": ["create_student", "save_student", "student_data_config"],
        "projection": ["attach_projection_head", "load_projection_head", "save_backbone_and_head"],
        "embeddings": ["pooled_embedding"],
        "precision": ["resolve_precision"],
        "pixels": ["normalize"],
    },
)
