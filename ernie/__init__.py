"""ERNIE 2.0 model library, grouped by role: the model core (`model`), fused CPU kernels
(`kernels`), model directories and checkpoint formats (`formats`), pre-training (`pretrain`),
fine-tuning (`finetune`), exported models (`serving`); the command lines at the top (`convert`,
`encode`, `export`, `predict`, `plot`; `python -m ernie.pretrain`, `python -m ernie.finetune`).

Importing the package is cheap: modules that need Paddle import it themselves. Import `ernie`
before `paddle` so that the CPU settings below reach Paddle's math library (see
`ernie.kernels.cpu_runtime`).
"""
import os as _os
import warnings as _warnings

__version__ = "0.1.0"

# Paddle logs every executor start at INFO level, warns about ccache at import, and warns when
# its own `ones_like` asks a static-graph value for its device; none of it concerns a user of
# this library. Set GLOG_minloglevel=0 to see Paddle's logs again.
_os.environ.setdefault("GLOG_minloglevel", "2")
_warnings.filterwarnings("ignore", message="No ccache found")
_warnings.filterwarnings("ignore", message="Tensor do not have 'place' interface for pir graph mode")

# Paddle's bundled MKL picks a slow generic code path on non-Intel x86 CPUs unless told the CPU
# supports AVX2; measured here on an AMD EPYC, sgemm goes from 48 to 96 GFLOP/s. No effect on
# Intel CPUs. Must be set before MKL loads.
_os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")


def _user_set_threads(environ) -> bool:
    """Whether the user chose OMP_NUM_THREADS. Paddle forces it to 1 at import when it is unset,
    and Paddle's launcher, which imports Paddle before it starts the ranks, passes that 1 to each
    of them: run_pretrain.sh marks a launch in which the user set none (ERNIE_THREADS_UNSET=1), so
    that its ranks share the cores (`ernie.kernels.cpu_runtime.math_threads`) instead of running
    one thread each."""
    return "OMP_NUM_THREADS" in environ and environ.get("ERNIE_THREADS_UNSET") != "1"


USER_SET_THREADS = _user_set_threads(_os.environ)
