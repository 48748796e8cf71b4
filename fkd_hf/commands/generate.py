"""``fkd-hf generate``: store FKD soft labels for an image dataset.

    fkd-hf generate --dataset imagefolder:../shared/data/imagenette-mini/train --output_dir outputs/labels \
        --teacher efficientnet-lite0 --class_map auto --num_crops 8
    accelerate launch -m fkd_hf generate --config recipes/generate_imagenet.yaml
"""

from __future__ import annotations

from ..arguments import parse_config
from ..generation import GenerateConfig, generate


def main(argv: list[str]) -> int:
    (config,) = parse_config([GenerateConfig], argv, prog="fkd-hf generate", description=__doc__)
    generate(config)
    return 0
