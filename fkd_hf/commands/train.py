"""``fkd-hf train``: train a student (timm or transformers) on an FKD label set.

    fkd-hf train --config recipes/imagenette_cpu.yaml
    fkd-hf train --config recipes/imagenette_cpu.yaml --student resnet18 --output_dir outputs/r18
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml -m fkd_hf train --config recipes/resnet50_sgd.yaml
"""

from __future__ import annotations

from ..arguments import parse_config
from ..train import train
from ..training_config import FKDConfig


def main(argv: list[str]) -> int:
    (config,) = parse_config([FKDConfig], argv, prog="fkd-hf train", description=__doc__)
    train(config)
    return 0
