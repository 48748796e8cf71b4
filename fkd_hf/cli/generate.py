"""``fkd-hf generate``: store FKD soft labels for an image dataset.

    fkd-hf generate --dataset imagefolder:$IMAGENETTE --output_dir outputs/labels \\
        --teacher efficientnet-lite0 --class_map auto --stored_crops 8
    accelerate launch -m fkd_hf generate --config recipes/generate_imagenet1k.yaml
"""

from __future__ import annotations

import sys

from ..generation.config import GenerateConfig
from .arguments import parse_config

PROG = "fkd-hf generate"
RENAMED = {"num_crops": "stored_crops"}  # R was --num_crops before fkd-hf 0.2


def main(argv: list[str]) -> int:
    (config,) = parse_config([GenerateConfig], argv, prog=PROG, description=__doc__, renamed=RENAMED)
    from ..cpu_memory import keep_freed_memory

    keep_freed_memory()
    try:
        from ..generation import generate  # loads torch: Ctrl-C may come here too

        generate(config)
    except KeyboardInterrupt:
        print(f"{PROG}: {interrupted(config.output_dir)}", file=sys.stderr)
        return 130
    return 0


def interrupted(output_dir: str) -> str:
    """The one line Ctrl-C prints: how many shards are kept, and how to resume."""
    from ..generation.output import shard_progress

    kept, total = shard_progress(output_dir)
    of = f" of {total}" if total else ""
    return f"interrupted; {kept}{of} shards kept in {output_dir}: rerun the same command to resume."
