"""Import faiss with an OpenBLAS kernel that matches the CPU.

The faiss-cpu wheels bundle their own OpenBLAS, which picks its matrix kernels from the
CPU model that CPUID reports. Virtual machines often hide the model (this project's
machines report a bare "Intel(R) Xeon(R) Processor"), and OpenBLAS then falls back to
its generic kernels: faiss's exact search, one large matrix product, runs 3x slower
(``benchmarks/bench_jaccard.py`` at N = 12,936: 12.6 s with the fallback, 4.1 s with the
AVX-512 kernels). ``OPENBLAS_CORETYPE`` names the kernel to use instead; we set it from
the instruction sets the CPU itself lists, only on Linux x86-64, only when the user has
not set it, and only if faiss is not loaded yet (OpenBLAS reads it once, when loaded).

Every module of ``reidlib`` that needs faiss imports it from here::

    from reidlib._faiss import faiss
"""

from __future__ import annotations

import os
import platform
import sys


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The instruction-set flags of the first CPU in ``path``; empty when unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_coretype(flags: set[str]) -> str | None:
    """The OpenBLAS kernel family these flags can run, best first; None: leave it to OpenBLAS."""
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def choose_openblas_kernel() -> str | None:
    """Set ``OPENBLAS_CORETYPE`` when it helps and is still possible; returns what is in force."""
    if "faiss" in sys.modules or "OPENBLAS_CORETYPE" in os.environ:
        return os.environ.get("OPENBLAS_CORETYPE")
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    coretype = openblas_coretype(cpu_flags())
    if coretype is not None:
        os.environ["OPENBLAS_CORETYPE"] = coretype
    return coretype


choose_openblas_kernel()

import faiss  # noqa: E402  (after the environment variable, on purpose)

__all__ = ["faiss", "openblas_coretype", "cpu_flags", "choose_openblas_kernel"]
