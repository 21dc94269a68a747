"""Two gloo processes train two epochs on prepared shards whose labels are the positions; each
saves, per epoch, the labels of every batch it trained (one file per process).

    python tests/ddp_shards_script.py SHARDS OUT_DIR [LOADER_WORKERS]
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

from helpers import tiny_module, trainer
from lightning.pytorch import Callback

from minc_lightning.data import MINCDataModule


class Seen(Callback):
    def __init__(self) -> None:
        self.batches = defaultdict(list)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches[trainer.current_epoch].append(batch[1].tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        out = Path(sys.argv[2]) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps(self.batches))


def main() -> None:
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    data = MINCDataModule("streaming", sys.argv[1], batch_size=4, num_workers=workers, val_subset=4)
    fit = trainer(devices=2, strategy="ddp", max_epochs=2, limit_val_batches=0, callbacks=[Seen()])
    fit.fit(tiny_module(batch_size=4, num_classes=0), data)


if __name__ == "__main__":
    main()
