"""The FKD label-set format and what it is made of: target types (what each crop stores) and soft-label kinds, crops
(sampled and replayed), image sources, attaching labels to images, and the one label-set writer."""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "format": ["LabelSet", "LabelSetMetadata", "label_features", "load_label_set", "read_metadata"],
        "kinds": ["KINDS", "quantize", "reconstruct"],
        "targets": ["DEFAULT_TARGET_TYPE", "TARGET_TYPES", "target_type"],
        "targets.base": ["TargetType"],
        "crops": ["crops_to_pixels", "replay_crop", "sample_crops"],
        "images": ["ImageSource", "image_key", "load_images"],
        "attach": ["LabelMismatchError", "join_labels", "open_label_set"],
        "writer": ["LabelSetWriter", "write_label_set"],
        "checks": ["LabelSetError", "check_label_set"],
        "official": ["load_label_file", "index_label_files", "match_label_files"],
        "merge": ["SharedCrops", "merge_label_sets"],
    },
)
