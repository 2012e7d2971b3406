"""The machine a figure was measured on: the CPU's model name and the flags that decide which
kernels run, so that timings from different machines are never mixed up (benchmarks print it,
pre-training records it in summary.json)."""
from __future__ import annotations

import os

# vector width, bfloat16 and float16 arithmetic, AMX tiles
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> tuple:
    """(model name, set of flags) from /proc/cpuinfo (Linux; 'unknown' and none elsewhere)."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def cpu_flags() -> frozenset:
    """The CPU's feature flags as the kernel reports them (`amx_bf16`, `avx512_bf16`, ...)."""
    return frozenset(_cpuinfo()[1])


def cpu_line() -> str:
    """`CPU: <model name>; <cores> cores; flags: ...` from /proc/cpuinfo (Linux; 'unknown' elsewhere)."""
    model, flags = _cpuinfo()
    present = [flag for flag in CPU_FLAGS if flag in flags]
    return f"CPU: {model}; {os.cpu_count()} cores; flags: {' '.join(present) or 'none of ' + ' '.join(CPU_FLAGS)}"
