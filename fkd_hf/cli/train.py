"""``fkd-hf train``: train a student (timm or transformers) on an FKD label set.

    fkd-hf train --config recipes/imagenette_cpu.yaml
    fkd-hf train --config recipes/imagenette_cpu.yaml --student resnet18 --output_dir outputs/r18
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml -m fkd_hf train --config recipes/resnet50_sgd.yaml
"""

from __future__ import annotations

from .arguments import parse_config

PROG = "fkd-hf train"


def main(argv: list[str]) -> int:
    from ..cpu_memory import keep_freed_memory
    from ..training import FKDConfig, train

    (config,) = parse_config([FKDConfig], argv, prog=PROG, description=__doc__)
    keep_freed_memory()
    train(config)
    return 0
