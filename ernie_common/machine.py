"""The machine a figure was measured on: the CPU's model name and the flags that decide which
kernels run, so that timings from different machines are never mixed up (benchmarks print it,
pre-training records it in summary.json).

The flags are those this process may use: the CPU's, less what oneDNN is capped below
(`ONEDNN_MAX_CPU_ISA`, or its older name `DNNL_MAX_CPU_ISA`). oneDNN runs the matrix products, so a
process capped at AVX2 on a Xeon with AMX runs them as an AVX2-only CPU would, and the decisions
taken from these flags (bfloat16 under `amp: auto`, the instruction set the fused kernels are built
for) follow: that is how one machine measures another kind's code paths (`ISA_CAPS`), on its own
cores (which decide what an instruction costs: `amp: auto` takes the vendor too)."""
from __future__ import annotations

import os
from typing import Optional

# vector width, bfloat16 and float16 arithmetic, AMX tiles
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")

# oneDNN's instruction-set levels, lowest first (its names; the AVX10 ones are aliases below), each
# with the flags it is the first to use
_ISA_LEVELS = (
    ("SSE41", ("sse4_1",)),
    ("AVX", ("avx",)),
    ("AVX2", ("avx2", "fma")),
    ("AVX2_VNNI", ("avx_vnni",)),
    ("AVX2_VNNI_2", ("avx_vnni_int8", "avx_ne_convert")),
    ("AVX512_CORE", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
    ("AVX512_CORE_VNNI", ("avx512_vnni",)),
    ("AVX512_CORE_BF16", ("avx512_bf16",)),
    ("AVX512_CORE_FP16", ("avx512_fp16",)),
    ("AVX512_CORE_AMX", ("amx_tile", "amx_bf16", "amx_int8")),
    ("AVX512_CORE_AMX_FP16", ("amx_fp16",)),
)
_LEVEL_NAMES = tuple(name for name, _ in _ISA_LEVELS)
# a flag of these families that no level names (avx512_vbmi, amx_complex, ...) needs the family's first level
_FAMILIES = (("avx512", "AVX512_CORE"), ("amx", "AVX512_CORE_AMX"))
_ISA_ALIASES = {"AVX10_1_512": "AVX512_CORE_FP16", "AVX10_1_512_AMX": "AVX512_CORE_AMX",
                "AVX10_1_512_AMX_FP16": "AVX512_CORE_AMX_FP16"}
_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # oneDNN reads the first one set

# the environment that makes a process run its matrix products and vector kernels as another CPU
# kind would: oneDNN (Paddle's and PyTorch's), MKL (Paddle's and PyTorch's BLAS), PyTorch's own
# vectorised kernels. "avx2": an AMD EPYC or Intel Xeon without AVX-512; "avx512_bf16": AVX-512 with
# bfloat16 dot products and no AMX (Intel Cooper Lake's code paths; AMD Zen 4's, at an Intel core's costs)
ISA_CAPS = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "avx512_bf16": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                    "ATEN_CPU_CAPABILITY": "avx512"},
}


def _cpuinfo_fields() -> dict:
    """/proc/cpuinfo's fields as `key: value` (the last processor's, all alike on one machine);
    empty where there is none (not Linux)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _cpuinfo() -> tuple:
    """(model name, set of flags) from /proc/cpuinfo (Linux: x86's `flags`, ARM's `Features`;
    'unknown' and none elsewhere)."""
    fields = _cpuinfo_fields()
    return fields.get("model name", "unknown"), set((fields.get("flags") or fields.get("Features") or "").split())


def cpu_vendor() -> str:
    """/proc/cpuinfo's vendor_id (`GenuineIntel`, `AuthenticAMD`; 'unknown' where it has none): the
    same instruction runs at different rates on the two vendors' cores (bfloat16 under `amp: auto`)."""
    return _cpuinfo_fields().get("vendor_id", "unknown")


def isa_cap() -> Optional[str]:
    """oneDNN's instruction-set cap as this process set it (its level name), or None: unset, `ALL`,
    `DEFAULT`, or a value oneDNN does not know (which oneDNN ignores too)."""
    for variable in _CAP_VARIABLES:
        value = os.environ.get(variable, "").strip().upper()
        if value:
            value = _ISA_ALIASES.get(value, value)
            return value if value in _LEVEL_NAMES else None
    return None


def _level(flag: str) -> int:
    """The index of the instruction-set level `flag` needs; -1 for a flag no cap hides."""
    for index, (_, flags) in enumerate(_ISA_LEVELS):
        if flag in flags:
            return index
    family = next((level for prefix, level in _FAMILIES if flag.startswith(prefix)), None)
    return _LEVEL_NAMES.index(family) if family else -1


def cpu_flags(capped: bool = True) -> frozenset:
    """The CPU feature flags this process may use (`amx_bf16`, `avx512_bf16`, ...): the kernel's,
    less those above oneDNN's cap (`capped=False`: all of the kernel's)."""
    flags, cap = _cpuinfo()[1], isa_cap()
    if cap is None or not capped:
        return frozenset(flags)
    return frozenset(flag for flag in flags if _level(flag) <= _LEVEL_NAMES.index(cap))


def cpu_line() -> str:
    """`CPU: <model name>; <cores> cores; flags: ...` from /proc/cpuinfo (Linux; 'unknown' elsewhere),
    with the cap, if any, that hides some of them from this process."""
    model, flags = _cpuinfo()[0], cpu_flags()
    present = [flag for flag in CPU_FLAGS if flag in flags]
    capped = f"; oneDNN capped at {isa_cap()}" if isa_cap() else ""
    return (f"CPU: {model}; {os.cpu_count()} cores; flags: {' '.join(present) or 'none of ' + ' '.join(CPU_FLAGS)}"
            f"{capped}")
