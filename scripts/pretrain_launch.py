"""Entry file for `python -m paddle.distributed.launch`, which runs scripts by path, not modules:

    python -m paddle.distributed.launch --nproc_per_node 2 scripts/pretrain_launch.py --config CONFIG

Same arguments as `python -m ernie.pretrain`; each launched process is one data-parallel rank.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

from ernie.pretrain.trainer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
