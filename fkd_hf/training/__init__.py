"""FKD training: ``FKDConfig``, ``FKDTrainer``, the loss (and the loss of each target type), the multi-crop datasets
and their crop layouts, ``build_trainer`` (and the values it resolves), ``train``, and the k-NN and linear-probe top-1
of a backbone's features."""

from .._lazy import lazy_namespace

__all__, __getattr__, __dir__ = lazy_namespace(
    __name__,
    globals(),
    {
        "config": ["FKDConfig"],
        "trainer": ["FKDTrainer", "NonFiniteLossError"],
        "loss": ["mix_crops", "sample_mix", "soft_cross_entropy"],
        "targets": ["TARGET_LOSSES", "target_loss"],
        "data": ["EvalDataset", "FKDCropDataset", "collate_crops", "select_crops"],
        "layouts": ["LAYOUTS", "LayoutPlan", "plan_layout"],
        "layouts.spread": ["SpreadCropDataset"],
        "resolved": ["ResolvedRun"],
        "builder": ["FKDSetup", "build_trainer"],
        "runner": ["train"],
        "card_callback": ["StudentCardCallback"],
        "timm_adapter": ["SoftTargetLoader"],
        "embedding_metrics": ["embedding_scores", "knn_top1", "linear_probe_top1"],
    },
)
