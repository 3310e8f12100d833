"""Cached sparsity patterns, colorings and recorded passes must never be
reused when what the function captured has changed: a closure array mutated
in place, a rebound global scalar, a changed branch. (Regression: with
``c = [1, 0, 0]`` then ``c[:] = 1``, the sparse Hessian of sum(c * x**2) kept
the old one-entry pattern, and a recorded pass kept the old curvature.)"""
import numpy as np

import dualad as da

X0 = np.zeros(3)


def test_pattern_follows_a_closure_mutated_in_place():
    c = np.array([1.0, 0.0, 0.0])
    hess = da.hessian(lambda x: np.sum(c * x ** 2), mode="sparse", csr=True)
    np.testing.assert_array_equal(hess(X0).toarray(), np.diag([2.0, 0.0, 0.0]))
    c[:] = 1.0
    np.testing.assert_array_equal(hess(X0).toarray(), 2.0 * np.eye(3))
    np.testing.assert_array_equal(
        da.sparsity(lambda x: np.sum(c * x ** 2), X0, kind="hessian").toarray(), np.eye(3))


def test_recorded_pass_follows_a_closure_whose_change_keeps_the_value():
    d = np.ones(3)
    f = lambda x: np.sum(d * x ** 2) + np.sum(x[1:] * x[:-1])
    hess = da.hessian(f, mode="sparse", csr=True)
    for _ in range(3):                      # recorded, then replayed
        np.testing.assert_array_equal(hess(X0).toarray().diagonal(), [2.0, 2.0, 2.0])
    d[:] = 5.0                              # f(0) is still 0
    np.testing.assert_array_equal(hess(X0).toarray().diagonal(), [10.0, 10.0, 10.0])


SCALE = 1.0


def _scaled(x):
    return np.sum(SCALE * x ** 2)


def test_rebound_global_scalar():
    global SCALE
    hess = da.hessian(_scaled, mode="sparse")
    try:
        np.testing.assert_array_equal(hess(X0).diagonal(), [2.0, 2.0, 2.0])
        SCALE = 3.0
        np.testing.assert_array_equal(hess(X0).diagonal(), [6.0, 6.0, 6.0])
    finally:
        SCALE = 1.0


def test_sparse_jacobian_follows_closure():
    c = np.ones(3)
    jac = da.jacobian(lambda x: c * x ** 2, mode="sparse")
    np.testing.assert_array_equal(jac(np.ones(3)), 2.0 * np.eye(3))
    c[:] = 2.0
    np.testing.assert_array_equal(jac(np.ones(3)), 4.0 * np.eye(3))


def test_changed_branch_on_a_closure_flag():
    flag = {"coupled": False}

    def f(x):
        if flag["coupled"]:
            return np.sum(x[1:] * x[:-1])
        return np.sum(x ** 2)

    hess = da.hessian(f, mode="sparse", csr=True)
    np.testing.assert_array_equal(hess(X0).toarray(), 2.0 * np.eye(3))
    flag["coupled"] = True
    want = np.array([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(hess(X0).toarray(), want)


def _plain_rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_self_contained_functions_skip_the_fingerprint_others_do_not():
    from dualad.mixed.fingerprint import self_contained
    assert self_contained(_plain_rosen)
    assert self_contained(lambda x: np.sum(np.sin(x)) + len(x))
    c = np.ones(3)
    assert not self_contained(lambda x: c * x)              # closure
    assert not self_contained(_scaled)                     # global scalar
    weights = np.ones(3)
    assert not self_contained(lambda x, w=weights: w * x)   # mutable default
    assert not self_contained(np.sum)                      # not a plain function
