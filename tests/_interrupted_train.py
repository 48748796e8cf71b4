"""``fkd-hf train`` that receives a signal while it writes checkpoint STEP: after the weights, optimizer and RNG
state, before ``trainer_state.json``, the moment a stop leaves a checkpoint incomplete.

    python tests/_interrupted_train.py SIGINT 3 --label_set ... --save_strategy steps --save_steps 1
"""

import os
import signal
import sys

from fkd_hf.cli import main
from fkd_hf.training import FKDTrainer


def signal_during_save(signal_name: str, step: int) -> None:
    """Makes ``FKDTrainer`` send itself ``signal_name`` once it has saved the RNG state of checkpoint ``step``."""
    save_rng_state = FKDTrainer._save_rng_state

    def then_signal(self, output_dir):
        save_rng_state(self, output_dir)
        if self.state.global_step == step:
            os.kill(os.getpid(), getattr(signal, signal_name))

    FKDTrainer._save_rng_state = then_signal


if __name__ == "__main__":
    signal_during_save(sys.argv[1], int(sys.argv[2]))
    sys.exit(main(["train", *sys.argv[3:]]))
