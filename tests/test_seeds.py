"""Every script in examples/seeds/ runs and prints the numbers of the tutorial
it reproduces (/work/shared/seeds: MindSpore's derivation tutorial and
gradient notebook, MindSpore's English autodiff page, the forward/reverse
article).

Expected values are written as the tutorials print them. Each number is
compared with a tolerance of half a unit in its last printed digit (the
tutorials round: ``1.48``, ``0.0525``, ``4.5``), plus float32 slack (they
print float32 while dualad computes in float64); a number printed without
decimals (``[2. 2. 2.]``, ``[10]``) is exact. Where a value follows from a
formula it is also checked against that formula at float32 precision.
"""
from __future__ import annotations

import functools
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "examples" / "seeds"
VENV_PY = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PY) if VENV_PY.exists() else sys.executable

NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan")

# the tutorial's inputs
X = np.array([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]])
Y = np.array([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]])
SENS = np.array([[0.1, 0.6, 0.2], [0.8, 1.3, 1.1]])
JX, JY = np.array([0.8, 0.6, 0.2]), np.array([0.7, 0.4, 0.3])


# ============================================================================
# running and parsing
# ============================================================================
@functools.cache
def _execute(script: str) -> tuple[int, str, str]:
    proc = subprocess.run([PYTHON, str(SEEDS / script)], capture_output=True, text=True,
                          timeout=600, cwd=str(SEEDS))
    return proc.returncode, proc.stdout, proc.stderr


def run(script: str) -> dict:
    """``{label: printed text}`` for the ``label: value`` lines of a script
    (run once per test session)."""
    rc, stdout, stderr = _execute(script)
    if rc != 0:
        pytest.fail(f"{script} failed (exit {rc}):\n{stderr[-4000:]}", pytrace=False)
    out = {}
    for line in stdout.splitlines():
        if line.startswith("===") or ": " not in line:
            continue
        label, value = line.split(": ", 1)
        assert label not in out, f"{script} prints {label!r} twice"
        out[label] = value
    return out


def numbers(text: str) -> list[float]:
    return [float(t) for t in NUM.findall(text)]


def skeleton(text: str) -> str:
    """The printed structure with every number replaced by ``#``."""
    return NUM.sub("#", text)


def _tolerance(token: str) -> float:
    """Half a unit in the last printed digit of ``token`` (0 when it has no
    decimals: an integral print is exact), plus float32 slack."""
    mant, _, exp = token.lower().partition("e")
    decimals = len(mant.split(".")[1]) if "." in mant else 0
    value = abs(float(token))
    slack = 4e-7 * value + 1e-7
    if decimals == 0:
        return slack
    return 0.5 * 10.0 ** (int(exp or 0) - decimals) * (1 + 1e-9) + slack


def check_printed(script: str, label: str, tutorial: str) -> None:
    """The script's ``label`` line matches the tutorial's printed numbers."""
    got_text = run(script)[label]
    got = numbers(got_text)
    tokens = NUM.findall(tutorial)
    assert len(got) == len(tokens), f"{label}: printed {got_text!r}, tutorial {tutorial!r}"
    for g, t in zip(got, tokens, strict=True):
        assert abs(g - float(t)) <= _tolerance(t), (
            f"{label}: printed {got_text!r}, the tutorial prints {tutorial!r} ({g} vs {t})")


def check_exact(script: str, label: str, expected) -> None:
    """The script's ``label`` line equals ``expected`` at float32 precision."""
    got_text = run(script)[label]
    got = np.array(numbers(got_text))
    exp = np.concatenate([np.ravel(np.asarray(e, dtype=float)) for e in
                          (expected if isinstance(expected, tuple) else (expected,))])
    assert got.shape == exp.shape, f"{label}: printed {got_text!r}, expected {exp}"
    np.testing.assert_allclose(got, exp, rtol=5e-7, atol=1e-7, err_msg=label)


def check_structure(script: str, label: str, expected: str) -> None:
    assert skeleton(run(script)[label]) == expected, run(script)[label]


# ============================================================================
# the set of scripts
# ============================================================================
SCRIPTS = [
    "derivation_first_order.py", "derivation_stop_gradient.py", "derivation_higher_order.py",
    "derivation_jvp_vjp.py", "autodiff_en_linear.py", "notebook_grad.py",
    "notebook_training.py", "article_forward_reverse.py", "article_reverse_intermediates.py",
]


def test_every_script_is_checked_and_documented():
    found = sorted(p.name for p in SEEDS.glob("*.py") if not p.name.startswith("_"))
    assert found == sorted(SCRIPTS)
    readme = (SEEDS / "README.md").read_text(encoding="utf-8")
    for name in SCRIPTS:
        assert name in readme, f"README.md does not list {name}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs(script):
    assert run(script), f"{script} printed no results"


# ============================================================================
# mindspore-derivation-zh.txt
# ============================================================================
def test_first_order_inputs():
    s = "derivation_first_order.py"
    tut = "[[4.5099998 2.7 3.6000001] [4.5099998 2.7 3.6000001]]"
    check_printed(s, "grad_x", tut)
    check_exact(s, "grad_x", np.ones((2, 3)) @ Y.T)
    check_printed(s, "grad_all_x", tut)
    check_exact(s, "grad_all_y", X.T @ np.ones((2, 3)))
    check_structure(s, "grad_all_x", "[[#, #, #], [#, #, #]]")


def test_first_order_weight_and_sens():
    s = "derivation_first_order.py"
    check_printed(s, "grad_z", "(Tensor(shape=[1], dtype=Float32, value= [ 2.15359993e+01]),)"
                  .split("value=")[1])
    check_exact(s, "grad_z", np.sum(X @ Y))
    check_structure(s, "grad_z", "([#],)")
    check_printed(s, "grad_sens", "[[2.211 0.51 1.49 ] [5.588 2.68 4.07 ]]")
    check_exact(s, "grad_sens", SENS @ Y.T)


def test_first_order_single_output():
    s = "derivation_first_order.py"
    for label in ("grad_onehot", "grad_single"):
        check_printed(s, label, "[[0.11 1.1 1.1] [0.   0.  0. ]]")


def test_stop_gradient():
    s = "derivation_stop_gradient.py"
    check_printed(s, "grad_stop", "[[4.5, 2.7, 3.6], [4.5, 2.7, 3.6]]")
    check_exact(s, "grad_stop", np.ones((2, 3)) @ Y.T)
    check_printed(s, "grad_nostop", "[[9.0, 5.4, 7.2], [9.0, 5.4, 7.2]]")
    check_exact(s, "grad_nostop", 2 * np.ones((2, 3)) @ Y.T)


def test_higher_order():
    s = "derivation_higher_order.py"
    check_printed(s, "sin_second", "[-0.841471]")
    check_exact(s, "sin_second", -np.sin(1.0))
    check_printed(s, "square_second", "[2. 2. 2.]")
    check_exact(s, "first_dx_dy", ([40.0], [16.0]))
    printed = "[10] [8.] [8.] [0.]".split()
    for label, tut in zip(("dxdx", "dxdy", "dydx", "dydy"), printed, strict=True):
        check_printed(s, label, tut)
        check_structure(s, label, "[#]")


def test_jvp_vjp():
    s = "derivation_jvp_vjp.py"
    check_printed(s, "jvp_out", "[ 1.48, 1.49, 1.15]")
    check_printed(s, "jvp_tangent", "[ 0.0525, 0.436, 0.685]")
    check_printed(s, "vjp_out", "[ 1.48, 1.49, 1.15]")
    check_printed(s, "vjp_cot_x", "[ 0.70, 0.83, 0.98]")
    check_printed(s, "vjp_cot_y", "[-0.64, -0.39, -0.30]")
    check_exact(s, "jvp_out", np.sin(JX) + np.cos(JY))
    check_exact(s, "jvp_tangent", np.cos(JX) - np.sin(JY))
    check_exact(s, "vjp_cot_x", np.cos(JX))
    check_exact(s, "vjp_cot_y", -np.sin(JY))


# ============================================================================
# mindspore-autodiff-en.txt
# ============================================================================
def test_linear_network():
    s = "autodiff_en_linear.py"
    check_printed(s, "grad_x", "[6.]")
    check_printed(s, "wgrad", "[100.]")
    check_printed(s, "bgrad", "[1.]")
    check_printed(s, "grad_w_only", "[ 5.00000000e+00]")
    check_structure(s, "grad_w_only", "([#],)")
    check_printed(s, "grad_sens", "[0.6]")
    check_printed(s, "stop_wgrad", "[0.]")
    check_printed(s, "stop_bgrad", "[0.]")


# ============================================================================
# mindspore-gradient-notebook-zh.ipynb
# ============================================================================
G_X, G_Y, G_W = "[[4.00000000e+000, 6.00000000e+000, 8.00000000e+000]]", "-2", \
    "[[2.00000000e+000, 4.00000000e+000, 6.00000000e+000]]"


def test_notebook_network():
    s = "notebook_grad.py"
    assert run(s)["name"] == "fc.weight"
    check_printed(s, "weight_data", "[[2. 3. 4.]]")
    check_printed(s, "loss", "1.0")
    check_printed(s, "logits", "20.0")


def test_notebook_grad_positions_and_weights():
    s = "notebook_grad.py"
    check_printed(s, "grads1_grad", "[[4. 6. 8.]]")
    check_printed(s, "grads2_grad", "-2.0")
    check_structure(s, "grads2_grad", "#")
    check_printed(s, "grads3_grad", f"{G_X} {G_Y}")
    check_structure(s, "grads3_grad", "([[#, #, #]], #)")
    check_printed(s, "grads4_grad", G_W)
    check_structure(s, "grads4_grad", "([[#, #, #]],)")
    check_printed(s, "grads5_grad", f"{G_X} {G_W}")
    check_structure(s, "grads5_grad", "([[#, #, #]], ([[#, #, #]],))")
    check_printed(s, "grads6_grad", f"{G_X} {G_Y} {G_W}")
    check_structure(s, "grads6_grad", "(([[#, #, #]], #), ([[#, #, #]],))")
    for i in range(1, 7):
        check_printed(s, f"grads{i}_logit", "(Tensor(shape=[], dtype=Float32, value= 20),)"
                      .split("value=")[1])
        check_structure(s, f"grads{i}_logit", "(#,)")


def test_notebook_has_aux_false_and_errors():
    s = "notebook_grad.py"
    check_printed(s, "grads7_grad", "[[ 6. 9. 12.]]")
    check_printed(s, "net2_grad", "[[ 6. 9. 12.]]")
    err = run(s)["grads8_error"]
    assert err.startswith("ValueError") and "None" in err


def test_notebook_value_and_grad():
    s = "notebook_grad.py"
    check_printed(s, "vg_value", "1 20")
    check_structure(s, "vg_value", "(#, #)")
    check_printed(s, "vg_grad", f"{G_X} {G_Y} {G_W}")
    check_structure(s, "vg_grad", "(([[#, #, #]], #), ([[#, #, #]],))")


def test_notebook_loss_scale():
    s = "notebook_training.py"
    check_printed(s, "loss_unscaled", "1.0")
    check_printed(s, "scaled_loss", "1024.0")
    check_printed(s, "scaled_grad", "[[2.04800000e+003, 4.09600000e+003, 6.14400000e+003]]")
    check_structure(s, "scaled_grad", "([[#, #, #]],)")
    check_printed(s, "unscaled_loss", "1.0")
    check_printed(s, "unscaled_grad", G_W)
    assert run(s)["all_finite"] == "True"
    assert run(s)["all_finite_overflow"] == "False"


def _mindspore_rule(scale, factor, window, steps):
    counter, out = 0, []
    for finite in steps:
        if finite:
            if counter == window - 1 and math.isfinite(scale * factor):
                scale *= factor
            counter = (counter + 1) % window
        else:
            scale, counter = max(1.0, scale / factor), 0
        out.append(scale)
    return out


def test_notebook_dynamic_scaler():
    s = "notebook_training.py"
    steps = [bool(v) for v in numbers(run(s)["dynamic_steps"])]
    check_exact(s, "dynamic_scales", _mindspore_rule(1024.0, 2.0, 2, steps))
    assert 0.0 in numbers(run(s)["dynamic_steps"])      # the run has an overflow


def test_notebook_clip_by_global_norm():
    s = "notebook_training.py"
    g = np.array([[2.0, 4.0, 6.0]])
    check_exact(s, "clipped_grad", g / np.linalg.norm(g))
    check_structure(s, "clipped_grad", "([[#, #, #]],)")
    check_exact(s, "clipped_norm", 1.0)
    check_exact(s, "clip_zero", np.zeros(5))
    check_structure(s, "clip_zero", "([[#, #, #]], [#, #])")


def test_notebook_gradient_accumulation():
    s = "notebook_training.py"
    xs = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0], [3.0, 0.0, -1.0], [1.0, 1.0, 1.0]])
    ys = np.array([19.0, 5.0, 1.0, 9.0])
    w = np.array([2.0, 3.0, 4.0])
    full = (2 / len(ys)) * ((xs @ w - ys) @ xs)
    check_exact(s, "full_grad", full)
    check_exact(s, "accum_grad", full)
    check_exact(s, "updated_weight", w - 0.01 * full)
    check_structure(s, "accum_grad", "[[#, #, #]]")


# ============================================================================
# autodiff-forward-reverse-article-zh.txt
# ============================================================================
def test_article_modes():
    s = "article_forward_reverse.py"
    check_printed(s, "fwd_y", "11.6521")
    check_printed(s, "fwd_dy_dx1", "5.5000")
    check_printed(s, "fwd_dy_dx2", "1.7163")
    check_exact(s, "fwd_dy_dx2", 2.0 - np.cos(5.0))
    for label in ("rev_grad", "rev_vjp"):
        check_printed(s, label, "5.5000 1.7163")
        check_structure(s, label, "(#, #)")


def test_article_tape_tensors():
    s = "article_forward_reverse.py"
    check_printed(s, "y", "tensor(11.6521")
    check_printed(s, "grad", "tensor(5.5000) tensor(1.7163)")
    for label, tut in [("v1", "0.6931"), ("v2", "10."), ("v3", "-0.9589"), ("v4", "10.6931"),
                       ("fwd_sim_y", "11.6521"), ("dv1", "(tensor(0.5000),)"),
                       ("dv2", "(tensor(5.),)"), ("dv3", "(tensor(0.2837),)"),
                       ("dv4", "(tensor(5.5000), tensor(2.))"),
                       ("fwd_sim_grad", "5.5000 1.7163"),
                       ("backward_x1_grad", "5.5000"), ("backward_x2_grad", "1.7163")]:
        check_printed(s, label, tut)
    assert "Error" in run(s)["second_backward"]


def test_article_higher_order_and_inputs():
    s = "article_forward_reverse.py"
    check_exact(s, "d2y_dx1dx1_dx1dx2", (-0.25, 1.0))
    check_exact(s, "d2y_dx2dx1_dx2dx2", (1.0, np.sin(5.0)))
    check_exact(s, "inputs_a_grad", 3.0)
    assert run(s)["inputs_b_grad"] == "None"
    x = np.array(numbers(run(s)["bw_x"])).reshape(2, 2)
    y = np.array(numbers(run(s)["bw_y"])).reshape(2, 2)
    for prefix in ("bw", "cg"):
        check_exact(s, f"{prefix}_x_grad", 2 * x + y)
        check_exact(s, f"{prefix}_y_grad", x + 2 * y)
    check_exact(s, "cg_x_hv", np.full(4, 5.0))


def test_article_reverse_intermediates():
    s = "article_reverse_intermediates.py"
    for label, tut in [("rev_dv4", "(tensor(1.),)"), ("rev_dv3", "(tensor(-1.),)"),
                       ("rev_dv2", "(tensor(1.),)"), ("rev_dv1", "(tensor(1.),)"),
                       ("rev_dv0", "(tensor(0.2837),)"), ("rev_dv21", "(tensor(5.),)"),
                       ("rev_dv22", "(tensor(2.),)"), ("rev_dv11", "(tensor(0.5000),)"),
                       ("rev_sim_grad", "tensor(5.5000) tensor(1.7163)")]:
        check_printed(s, label, tut)
