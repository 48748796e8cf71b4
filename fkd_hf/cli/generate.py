"""``fkd-hf generate``: store FKD soft labels for an image dataset.

    fkd-hf generate --dataset imagefolder:../shared/data/imagenette-mini/train --output_dir outputs/labels \
        --teacher efficientnet-lite0 --class_map auto --stored_crops 8
    accelerate launch -m fkd_hf generate --config recipes/generate_imagenet.yaml
"""

from __future__ import annotations

from ..generation.config import GenerateConfig
from .arguments import parse_config

PROG = "fkd-hf generate"
RENAMED = {"num_crops": "stored_crops"}  # R was --num_crops before fkd-hf 0.2


def main(argv: list[str]) -> int:
    (config,) = parse_config([GenerateConfig], argv, prog=PROG, description=__doc__, renamed=RENAMED)
    from ..cpu_memory import keep_freed_memory
    from ..generation import generate

    keep_freed_memory()

    generate(config)
    return 0
