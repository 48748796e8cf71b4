"""``fkd-hf import-fkd``: convert the label files of FKD's official generator into an fkd-hf label set.

    fkd-hf import-fkd FKD_soft_label_500_crops_marginal_smoothing_k_5/imagenet/train \\
        --dataset imagefolder:imagenet/train --output_dir outputs/imagenet-fkd-labels
    accelerate launch -m fkd_hf import-fkd LABEL_DIR --dataset imagefolder:imagenet/train --output_dir OUT

LABEL_DIR holds one <stem>.tar per image (FKD_SLG/generate_soft_label.py), matched to the images by file name
(n01440764_10026.JPEG <-> n01440764_10026.tar). The files do not record the teacher, its temperature and
preprocessing or the crop ranges: give them as flags (the defaults are those of the official example). Nothing is
regenerated; a rerun of the same command finishes an interrupted import.
"""

from __future__ import annotations

from ..generation.import_config import ImportFKDConfig
from .arguments import parse_config

PROG = "fkd-hf import-fkd"


def main(argv: list[str]) -> int:
    (config,) = parse_config([ImportFKDConfig], argv, prog=PROG, description=__doc__, positional="label_dir")
    from ..generation import import_fkd

    import_fkd(config)
    return 0
