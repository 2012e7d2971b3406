"""The flags a process may use: the CPU's less those above oneDNN's instruction-set cap, and the
decisions taken from them."""
import pytest

from ernie.kernels import cpu_kernels
from ernie_common import machine
from propeller.mixed_precision import cpu_bf16_isa, has_gpu

XEON_AMX = {"sse4_1", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vbmi", "avx512_vnni",
            "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "aes"}


@pytest.fixture
def xeon(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("Intel(R) Xeon(R) Processor", set(XEON_AMX)))
    monkeypatch.setattr(cpu_kernels, "cpu_vendor", lambda: "GenuineIntel")
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ERNIE_CPU_KERNELS"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_no_cap_leaves_every_flag(xeon):
    assert machine.cpu_flags() == frozenset(XEON_AMX)
    assert machine.isa_cap() is None
    xeon.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert machine.cpu_flags(capped=False) == frozenset(XEON_AMX)  # the CPU's own, whatever the cap
    xeon.delenv("ONEDNN_MAX_CPU_ISA")
    assert "capped" not in machine.cpu_line()


@pytest.mark.parametrize("cap, kept, hidden", [
    ("AVX2", {"avx2", "fma", "avx", "sse4_1", "aes"},
     {"avx512f", "avx512bw", "avx512_vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"}),
    ("avx512_core_bf16", {"avx512f", "avx512_vbmi", "avx512_vnni", "avx512_bf16"}, {"avx512_fp16", "amx_bf16", "amx_int8"}),
    ("AVX512_CORE", {"avx512f", "avx512bw"}, {"avx512_vnni", "avx512_bf16"}),
    ("AVX10_1_512", {"avx512_fp16"}, {"amx_tile"}),
    ("AVX512_CORE_AMX", XEON_AMX, set()),
])
def test_a_cap_hides_the_flags_above_it(xeon, cap, kept, hidden):
    xeon.setenv("ONEDNN_MAX_CPU_ISA", cap)
    flags = machine.cpu_flags()
    assert kept <= flags and not hidden & flags
    assert machine.cpu_line().endswith(f"oneDNN capped at {machine.isa_cap()}")


def test_cap_names_as_onednn_reads_them(xeon):
    xeon.setenv("DNNL_MAX_CPU_ISA", "AVX2")  # the older name, alone
    assert machine.isa_cap() == "AVX2"
    xeon.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # the newer name wins
    assert machine.isa_cap() == "AVX512_CORE"
    for ignored in ("ALL", "DEFAULT", "AVX3000"):  # oneDNN runs uncapped on these, and so do the flags
        xeon.setenv("ONEDNN_MAX_CPU_ISA", ignored)
        assert machine.isa_cap() is None and machine.cpu_flags() == frozenset(XEON_AMX)


@pytest.mark.skipif(has_gpu(), reason="amp auto decides on a CPU only")
def test_bfloat16_decisions_follow_the_cap(xeon):
    """`amp: auto` on an Intel core takes bf16 only where oneDNN may use AMX: capped below it, the
    process decides as a CPU without AMX would."""
    xeon.setattr(cpu_kernels, "available", lambda: True)  # built for the real CPU, not the one described here
    assert cpu_bf16_isa(machine.cpu_flags()) == "amx_bf16"
    assert cpu_kernels.auto_amp()[0] == "bf16"
    xeon.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cpu_bf16_isa(machine.cpu_flags()) == "avx512_bf16"
    assert cpu_kernels.auto_amp()[0] == "off"
    xeon.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu_bf16_isa(machine.cpu_flags()) is None


@pytest.mark.parametrize("text, vendor", [("vendor_id\t: AuthenticAMD\nflags\t\t: avx2\n", "AuthenticAMD"),
                                          ("processor\t: 0\nvendor_id\t: GenuineIntel\n", "GenuineIntel"),
                                          ("Features\t: fp asimd\n", "unknown")])
def test_the_vendor_is_read_from_cpuinfo(monkeypatch, text, vendor):
    import io
    monkeypatch.setattr(machine, "open", lambda path, encoding=None: io.StringIO(text), raising=False)
    assert machine.cpu_vendor() == vendor


def test_no_cpuinfo_is_an_unknown_vendor(monkeypatch):
    def missing(path, encoding=None):
        raise FileNotFoundError(path)
    monkeypatch.setattr(machine, "open", missing, raising=False)
    assert machine.cpu_vendor() == "unknown"
