"""reidlib._faiss: OpenBLAS's kernel is chosen from the CPU's own flags, never over the user's."""

from __future__ import annotations

import os
import subprocess
import sys

from reidlib._faiss import cpu_flags, openblas_coretype


def test_kernel_follows_the_instruction_sets():
    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "sse4_2"}
    assert openblas_coretype(avx512) == "SkylakeX"
    assert openblas_coretype({"avx2", "fma", "sse4_2"}) == "Haswell"
    # AVX-512F alone (e.g. Knights Landing) lacks the BW/DQ/VL kernels SkylakeX uses
    assert openblas_coretype({"avx512f", "avx2", "fma"}) == "Haswell"
    assert openblas_coretype({"sse4_2", "avx"}) is None
    assert openblas_coretype(set()) is None


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 fma\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(str(info)) == {"fpu", "avx2", "fma"}
    assert cpu_flags(str(tmp_path / "missing")) == set()


def _coretype_in_child(env: dict) -> str:
    code = "import os, reidlib._faiss; print(os.environ.get('OPENBLAS_CORETYPE', 'unset'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_the_users_choice_is_kept():
    env = {**os.environ, "OPENBLAS_CORETYPE": "Prescott"}
    assert _coretype_in_child(env) == "Prescott"


def test_unset_gets_the_cpus_kernel_on_linux():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    expected = openblas_coretype(cpu_flags()) if sys.platform == "linux" else None
    assert _coretype_in_child(env) == (expected or "unset")
