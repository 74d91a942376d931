"""benchmarks/gpu_check.py, the one command for the GPU figures, checked without a GPU.

Its ``--dry-run`` runs every step on the CPU at tiny sizes: every owed figure must come
out, as a finite number, with the relations that hold between the figures. A step that
runs out of time keeps the figures it wrote. And since the check runs the CUDA tests as
``pytest -m gpu``, every test that CUDA's absence skips must carry the gpu mark.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"

# The owed figures, per step (the brief of the GPU check, not the script's own list).
EXPECTED = {
    "tests": ("passed", "failed", "errors", "skipped", "seconds"),
    "evaluate": ("queries", "gallery", "valid_queries", "evaluate_seconds", "sort_seconds",
                 "evaluate_over_sort", "mAP", "rank1", "cpu_evaluate_seconds",
                 "mAP_gap_to_cpu"),
    "jaccard": ("market_n", "market_dim", "market_seconds", "market_pairs_per_row",
                "market_gpu_peak_gib", "market_faiss_cpu_seconds", "market_faiss_max_gap",
                "msmt_n", "msmt_dim", "msmt_seconds", "msmt_pairs_per_row",
                "msmt_gpu_peak_gib"),
    "throughput": ("cc_batch_images", "cc_bare_images_per_s", "cc_loop_images_per_s",
                   "cc_loop_over_bare", "spcl_batch_images", "spcl_bare_images_per_s",
                   "spcl_loop_images_per_s", "spcl_loop_over_bare", "features_images_per_s"),
    "render": ("images_in_world", "sample_images", "sample_seconds", "images_per_s",
               "projected_world_seconds", "world_render_seconds", "world_save_seconds",
               "whole_world"),
    "cluster_contrast": ("train_images", "iters", "batch_images", "clusters_found",
                         "used_true_ids", "epoch_seconds", "relabel_seconds", "train_seconds",
                         "images_per_s", "projected_epochs", "projected_minutes"),
}


def load_script(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends its folders
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_dry_run_writes_every_figure(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["meta"]["dry_run"] is True and results["meta"]["steps"] == list(EXPECTED)
    for step, keys in EXPECTED.items():
        figures = results[step]
        assert figures["status"] == "ok", (step, figures["status"])
        assert figures["measured"]
        for key in keys:
            value = figures.get(key)
            assert isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value), f"{step}.{key} = {value!r}"
    assert not list(tmp_path.glob(".*partial*"))  # step files merged and removed

    tests, ev, jac = results["tests"], results["evaluate"], results["jaccard"]
    # on a CPU every gpu-marked test is skipped, none fails
    assert tests["passed"] == tests["failed"] == tests["errors"] == 0 < tests["skipped"]
    assert tests["files"] and all(f.startswith("tests/test_") for f in tests["files"])
    assert ev["mAP_gap_to_cpu"] == 0 and 0 < ev["mAP"] <= 1 and ev["valid_queries"] > 0
    assert jac["market_faiss_max_gap"] < 1e-4  # two exact searches, one distance
    for prefix in ("cc", "spcl"):
        ratio = results["throughput"][f"{prefix}_loop_images_per_s"] / \
            results["throughput"][f"{prefix}_bare_images_per_s"]
        assert results["throughput"][f"{prefix}_loop_over_bare"] == pytest.approx(ratio)
    render = results["render"]
    assert render["whole_world"] == 1
    # the sampled parameters are the images build_world renders
    assert render["images_in_world"] == render["world_images"]
    cc = results["cluster_contrast"]
    assert cc["world_cached"] == 1  # the render step's world, from the cache
    assert cc["projected_minutes"] == pytest.approx(
        cc["projected_epochs"] * cc["epoch_seconds"] / 60)
    assert cc["relabel_seconds"] + cc["train_seconds"] == pytest.approx(cc["epoch_seconds"])


def test_a_step_out_of_time_keeps_its_figures(tmp_path, monkeypatch):
    script = load_script(monkeypatch)
    partial = tmp_path / "step.partial.json"
    writes_then_hangs = [sys.executable, "-c",
                         f"import json, time; open({str(partial)!r}, 'w').write("
                         "json.dumps({'first': 1.5})); time.sleep(60)"]
    result = script.run_step_process(writes_then_hangs, partial, budget=3)
    assert result["status"] == "timeout after 3 s" and result["first"] == 1.5
    assert result["wall_s"] < 30 and not partial.exists()
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    assert script.run_step_process(failing, partial, budget=30)["status"] == "failed (exit 3)"


def test_results_file_names_and_json(monkeypatch):
    script = load_script(monkeypatch)
    assert script.card_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert script.card_slug("NVIDIA H200") == "nvidia-h200"
    assert script.card_slug("  ?? ") == "unknown"
    cleaned = script.finite_or_none({"a": float("nan"), "b": [1.0, float("inf")], "c": 2})
    assert json.loads(json.dumps(cleaned, allow_nan=False)) == {"a": None, "b": [1.0, None],
                                                                "c": 2}


# ------------------------------------------------------------- CUDA-skipped tests are gpu


def _mentions(node, names) -> bool:
    text = ast.unparse(node)
    return "cuda.is_available" in text or any(n in text.replace("(", " ").replace(")", " ")
                                              .replace(",", " ").split() for n in names)


def cuda_skipped_tests_without_gpu_mark(path: Path) -> list[str]:
    """Test functions of ``path`` that skip when CUDA is absent but are not marked gpu."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    cuda_names: set[str] = set()
    for node in tree.body:  # module-level aliases: CUDA = torch.cuda.is_available() ...
        if isinstance(node, ast.Assign) and _mentions(node.value, cuda_names):
            cuda_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    module_gpu = any(isinstance(n, ast.Assign) and "pytestmark" in ast.unparse(n)
                     and "mark.gpu" in ast.unparse(n) for n in tree.body)
    missing = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
            continue
        # skipif(...CUDA...) in a decorator or the body, an alias of one as a decorator,
        # or `if ...CUDA...: pytest.skip(...)`
        skips = [c for c in ast.walk(node) if _is_skip(c) and _mentions(c, cuda_names)]
        skips += [d for d in node.decorator_list
                  if isinstance(d, ast.Name) and d.id in cuda_names]
        skips += [b for b in ast.walk(node) if isinstance(b, ast.If)
                  and _mentions(b.test, cuda_names) and any(map(_is_skip, ast.walk(b)))]
        marked = module_gpu or any(ast.unparse(d) == "pytest.mark.gpu"
                                   for d in node.decorator_list)
        if skips and not marked:
            missing.append(f"{path.name}::{node.name}")
    return missing


def _is_skip(node) -> bool:
    return isinstance(node, ast.Call) and \
        ast.unparse(node.func).split(".")[-1] in ("skip", "skipif")


def test_every_cuda_skipped_test_is_marked_gpu(tmp_path):
    found = [m for p in sorted((ROOT / "tests").glob("test_*.py"))
             for m in cuda_skipped_tests_without_gpu_mark(p)]
    assert not found, f"mark these @pytest.mark.gpu so gpu_check runs them: {found}"
    # the checker itself: a CUDA skip through an alias, without the mark, is caught
    example = tmp_path / "test_example.py"
    example.write_text("import pytest, torch\nCUDA = torch.cuda.is_available()\n"
                       "needs = pytest.mark.skipif(not CUDA, reason='cuda')\n\n"
                       "@needs\ndef test_a():\n    pass\n\n"
                       "@pytest.mark.gpu\n@needs\ndef test_b():\n    pass\n\n"
                       "def test_c():\n    if not torch.cuda.is_available():\n"
                       "        pytest.skip('no cuda')\n")
    assert cuda_skipped_tests_without_gpu_mark(example) == ["test_example.py::test_a",
                                                            "test_example.py::test_c"]
