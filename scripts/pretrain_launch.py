"""Entry file for `python -m paddle.distributed.launch`, which runs scripts by path, not modules:

    python -m paddle.distributed.launch --nproc_per_node 2 scripts/pretrain_launch.py --config CONFIG

Same arguments as `python -m ernie.pretrain`; each launched process is one data-parallel rank.
With ERNIE_LAUNCH_STATUS=DIR each rank writes its exit code to DIR/rank-RANK.exit: the
launcher's own exit code can be 0 although a worker failed, and on a node other than 0 the
model (written by rank 0) says nothing about this node's ranks (run_pretrain.sh reads them).
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first

from ernie.pretrain.trainer import main  # noqa: E402
from ernie_common.fileio import atomic_write_text  # noqa: E402


def run() -> int:
    code = 1
    try:
        code = main()
    except SystemExit as done:  # argparse: 2 for a bad argument, 0 for --help
        code = done.code if isinstance(done.code, int) else 1
        raise
    finally:
        status = os.environ.get("ERNIE_LAUNCH_STATUS")
        if status:
            atomic_write_text(Path(status) / f"rank-{os.environ.get('PADDLE_TRAINER_ID', '0')}.exit", f"{code}\n")
    return code


if __name__ == "__main__":
    sys.exit(run())
