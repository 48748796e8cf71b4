"""``fkd-hf train``: train a student (timm or transformers) on an FKD label set.

    fkd-hf train --config recipes/imagenette_cpu.yaml
    fkd-hf train --config recipes/imagenette_cpu.yaml --student resnet18 --output_dir outputs/r18
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml -m fkd_hf train --config recipes/resnet50_sgd.yaml
    accelerate launch --config_file recipes/accelerate/cpu.yaml -m fkd_hf train --config recipes/imagenette_cpu.yaml

The student is evaluated on the dataset's validation split when it has one (--eval_split none skips it). The
output_dir must be new, empty, an earlier fkd-hf training run or the run being resumed; --overwrite_output_dir
writes into any other folder.
"""

from __future__ import annotations

import sys

from .arguments import parse_config, require

PROG = "fkd-hf train"


def main(argv: list[str]) -> int:
    from ..cpu_memory import keep_freed_memory
    from ..training import FKDConfig

    (config,) = parse_config([FKDConfig], argv, prog=PROG, description=__doc__)
    require(config, ["label_set", "student"], PROG)  # optional in FKDConfig, for a loop that sets them later
    from ..training import train  # after parsing: `--help` needs only the config

    keep_freed_memory()
    try:
        train(config)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; {_what_was_kept(config.output_dir)}", file=sys.stderr)
        return 130
    return 0


def _what_was_kept(output_dir: str) -> str:
    from ..training.checkpoints import last_complete_checkpoint

    last = last_complete_checkpoint(output_dir)
    if last is None:
        return "no checkpoint was saved (--save_strategy steps --save_steps N saves one every N steps)."
    return f"{last} is kept: rerun the same command with --resume_from_checkpoint last to continue from it."
