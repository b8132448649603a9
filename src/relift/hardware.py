"""What this machine computes fast, read from what the CPU declares (never from a timing, which a
busy machine distorts)."""

from __future__ import annotations

from pathlib import Path


def cpu_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (the avx512_bf16 or AMX bf16 flags). Without
    them torch emulates bf16 and runs it several times slower than fp32."""
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16_reason(native: bool) -> str:
    return "native bf16 in /proc/cpuinfo" if native else "no avx512_bf16/amx_bf16 flag"
