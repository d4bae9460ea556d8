"""Entry point of one torchrun worker: `python -m ktools.train.worker --config C.json --strategy ddp`.

`ktools.train.launch.run_training()` writes the TrainConfig to JSON and starts one of
these per GPU; rank 0 writes the model, loss curve and train_report.json, which the
launcher reads back.
"""

from __future__ import annotations

import argparse
import logging
import os

from ktools.io import read_json
from ktools.train.config import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ktools.train.worker", description=__doc__)
    parser.add_argument("--config", required=True, help="TrainConfig as JSON (written by run_training)")
    parser.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    config = TrainConfig(**read_json(args.config))

    from ktools.train.distributed import DistContext
    from ktools.train.trainer import train

    try:
        train(config, progress=not args.no_progress, strategy=args.strategy)
    finally:
        DistContext.from_env(args.strategy).close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
