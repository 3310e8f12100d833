"""Smoke tests of the benchmark workloads (bench/workloads.py) on tiny sizes:
every dualad formulation the benchmark times must agree with the hand-written
NumPy reference it is checked against. No timing here."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

# bench/ lives at the repository root, next to tests/ (it is not installed)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness  # noqa: E402
from bench import workloads as wl  # noqa: E402

RTOL = 1e-9


def assert_close(got, want, rtol=RTOL):
    err = harness.rel_error(got, want)
    assert err <= rtol, f"relative error {err:.3e}"


# ----------------------------------------------------------- the references


def test_references_match_finite_differences():
    # LJ gradient / Hessian references against central differences
    x = wl.lj_positions(4)
    eye = np.eye(x.size)
    eps = 1e-6
    fd = np.array([(wl.lj_energy(x + eps * e) - wl.lj_energy(x - eps * e)) / (2 * eps)
                   for e in eye])
    assert_close(wl.lj_grad_ref(x), fd, 1e-7)
    fd2 = np.array([(wl.lj_grad_ref(x + eps * e) - wl.lj_grad_ref(x - eps * e)) / (2 * eps)
                    for e in eye])
    assert_close(wl.lj_hessian_ref(x), fd2, 1e-7)
    # Rosenbrock: Hessian reference consistent with the HVP reference
    x, v = wl.w6_data(12)
    np.testing.assert_allclose(wl.rosen_hessian_ref(x) @ v, wl.rosen_hvp_ref(x, v), rtol=1e-12)


def test_w7_recurrence_matches_closed_forms():
    x = wl.W7_POINT
    s, c, e = math.sin(x), math.cos(x), math.exp(math.sin(x))
    assert wl.w7_taylor_ref(x, 0) == pytest.approx(e, rel=1e-14)
    assert wl.w7_taylor_ref(x, 1) == pytest.approx(c * e, rel=1e-14)
    assert wl.w7_taylor_ref(x, 2) == pytest.approx((c * c - s) * e, rel=1e-14)
    assert wl.w7_taylor_ref(x, 3) == pytest.approx((c**3 - 3 * s * c - c) * e, rel=1e-13)


# ----------------------------------------------------------- dualad workloads


def test_w1_grad():
    x = wl.w1_data(200)
    assert_close(wl.w1_grad_dualad(x), wl.w1_grad_ref(x))


def test_w2_values():
    a, b = wl.W2_POINT
    assert float(wl.w2_f(a, b)) == pytest.approx(11.652, abs=5e-4)
    for grads in (wl.w2_grad_dualad(a, b), wl.w2_grad_two_jvps(a, b)):
        g1, g2 = (float(g) for g in grads)
        assert g1 == pytest.approx(5.5, rel=1e-12)
        assert g2 == pytest.approx(1.7163, abs=5e-5)
        assert (g1, g2) == pytest.approx(wl.w2_grad_ref(a, b), rel=1e-12)


def test_w3_jvp_vjp():
    params, x, v = wl.w3_data((5, 7, 6, 1), batch=4)
    out, tan = wl.w3_jvp_dualad(params, x, v)
    ref_out, ref_tan = wl.w3_jvp_ref(params, x, v)
    assert_close(out, ref_out)
    assert_close(tan, ref_tan)
    grads = wl.w3_vjp_dualad(params, x)
    assert len(grads) == len(params)
    assert_close(tuple(grads), wl.w3_vjp_ref(params, x))


def test_w4_grad():
    x = wl.lj_positions(8)
    assert_close(wl.lj_grad_dualad(x), wl.lj_grad_ref(x))


@pytest.mark.parametrize("mode", ["auto", "fwd-rev", "rev-rev", "fwd-fwd", "hyperdual"])
def test_w4_hessian(mode):
    x = wl.lj_positions(8)
    h = np.asarray(wl.lj_hessian_dualad(x, mode))
    assert h.shape == (24, 24)
    assert_close(h, wl.lj_hessian_ref(x))
    asym, translation = wl.lj_hessian_defects(h)
    assert asym < 1e-12
    assert translation < 1e-12


@pytest.mark.parametrize("variant", ["laplacian_fwd_rev", "laplacian_fwd_fwd", "laplacian_hvp",
                                     "laplacian_hyperdual", "laplacian_dual_batch_grad",
                                     "laplacian_forward", "laplacian_vmap_hessian"])
def test_w5_laplacian(variant):
    params, pts = wl.w5_data((3, 6, 5, 1), n_points=7)
    ref = wl.laplacian_ref(params, pts)
    # the reference itself against second differences
    h = 1e-4
    fd = sum((wl.pinn_u(params, pts + h * t) - 2 * wl.pinn_u(params, pts)
              + wl.pinn_u(params, pts - h * t)) / h**2 for t in wl._unit_tangents(pts))
    assert_close(ref, fd, 1e-5)
    got = getattr(wl, variant)(params, pts)
    assert np.shape(got) == (7,)
    assert_close(got, ref)


def test_w6():
    x, v = wl.w6_data(9)
    assert_close(wl.rosen_grad_dualad(x), wl.rosen_grad_ref(x))
    assert_close(wl.rosen_hessian_dualad(x), wl.rosen_hessian_ref(x))
    assert_close(wl.rosen_hessian_dualad(x, "fwd-rev"), wl.rosen_hessian_ref(x))
    assert_close(wl.rosen_hvp_dualad(x, v), wl.rosen_hvp_ref(x, v))


def test_w7_sixth_derivative():
    import dualad as da

    want = wl.w7_taylor_ref()
    assert float(wl.w7_dualad()) == pytest.approx(want, rel=1e-10)

    # independent check: the third derivative by three nested dualad JVPs
    def d(f):
        return lambda x: da.jvp(f, (x,), (1.0,))[1]

    third = d(d(d(wl.w7_f)))(wl.W7_POINT)
    assert float(third) == pytest.approx(wl.w7_taylor_ref(order=3), rel=1e-12)


# ----------------------------------------------------------- harness pieces


def test_table_renders_missing_and_failed_rows():
    R = harness.Result
    rows = [R("W9 x", "numpy f", "npf", median=1e-3, first=2e-3, peak_mb=0.0),
            R("W9 x", "dualad", "dualad", status="n/a", message="ImportError: none"),
            R("W9 x", "peer", "peer", median=2e-3, first=1.0, peak_mb=1.5),
            R("W9 x", "bad", "peer", status="FAIL", message="relative error 1")]
    table = harness.format_table(rows)
    assert "n/a" in table and "FAIL" in table and "2.00" in table


def test_missing_features_classify_as_na():
    row = harness.Row("x", "dualad", lambda: None)
    assert harness._classify(ImportError("x"), row) == "n/a"
    assert harness._classify(NotImplementedError("x"), row) == "n/a"
    assert harness._classify(ZeroDivisionError("x"), row) == "ERROR"
