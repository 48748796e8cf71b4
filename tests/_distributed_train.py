"""Two-process CPU training (gloo) for tests/test_train.py; records which images each process trained on.

torchrun --standalone --nproc_per_node 2 tests/_distributed_train.py CONFIG.yaml
"""

import json
import sys
from pathlib import Path

import torch

from fkd_hf import FKDConfig, FKDTrainer, train
from fkd_hf.cli.arguments import parse_config

seen: list[int] = []
_compute_loss = FKDTrainer.compute_loss


def _recording_compute_loss(self, model, inputs, *args, **kwargs):
    seen.extend(inputs.get("sample_ids", []))
    return _compute_loss(self, model, inputs, *args, **kwargs)


def main(argv: list[str]) -> None:
    (config,) = parse_config([FKDConfig], argv, prog="_distributed_train", description=__doc__)
    FKDTrainer.compute_loss = _recording_compute_loss
    try:
        metrics = train(config)
        record = {"world_size": config.world_size, "seen": seen, "eval_top1": metrics.get("eval_top1")}
        Path(config.output_dir, f"rank{config.process_index}.json").write_text(json.dumps(record))
    finally:  # as `fkd-hf` does: an open process group can abort the interpreter's exit
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
