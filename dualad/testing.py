"""The shared numerical checker for every derivative rule.

``check_grads`` compares forward mode (JVP) with central differences along
random directions, and reverse mode (VJP) with the forward/numerical result
through the identity ``<u, J v> = <J^T u, v>``; ``order=2`` recurses on the
JVP and VJP functions themselves, which checks fwd-over-fwd, fwd-over-rev,
rev-over-fwd and rev-over-rev. Public, so users can check their own rules.

Example::

    >>> import numpy as np
    >>> from dualad.testing import check_grads
    >>> check_grads(np.sin, (np.array([0.1, 0.7]),), order=2)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dualad.core.tree import tree_flatten, tree_unflatten


def _dot(a_leaves, b_leaves) -> float:
    return float(sum(np.vdot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
                     for a, b in zip(a_leaves, b_leaves)))


def _default_eps(dtype) -> float:
    return 1e-3 if np.dtype(dtype) == np.float32 else 1e-6


def _default_tol(dtype) -> float:
    return 3e-2 if np.dtype(dtype) == np.float32 else 1e-5


def _random_like(leaves, rng):
    return [np.asarray(rng.standard_normal(np.shape(x)), dtype=np.result_type(x))
            for x in leaves]


def _scale(leaves, s):
    return [x * s for x in leaves]


def _add(a, b, s=1.0):
    return [x + s * y for x, y in zip(a, b)]


def _flat_out(y):
    leaves, _ = tree_flatten(y)
    return [np.asarray(v) for v in leaves]


def check_grads(f: Callable, args: Sequence, order: int = 2,
                modes: Sequence[str] = ("fwd", "rev"), eps: float | None = None,
                rtol: float | None = None, atol: float | None = None, seed: int = 0) -> None:
    """Raise ``AssertionError`` if ``f``'s derivatives disagree with central
    differences (``modes`` from ``"fwd"``, ``"rev"``; ``order`` 1 or more)."""
    from dualad.forward.api import jvp
    from dualad.reverse.api import vjp

    rng = np.random.default_rng(seed)
    args = tuple(args)
    in_leaves, in_td = tree_flatten(args)
    in_leaves = [np.asarray(x) for x in in_leaves]
    dtype = np.result_type(*in_leaves)
    eps = eps or _default_eps(dtype)
    tol = rtol or _default_tol(dtype)
    atol = tol if atol is None else atol
    unflat = lambda leaves: tree_unflatten(in_td, leaves)

    v = _random_like(in_leaves, rng)
    y_plus = _flat_out(f(*unflat(_add(in_leaves, v, eps))))
    y_minus = _flat_out(f(*unflat(_add(in_leaves, v, -eps))))
    numeric = [(p - m) / (2 * eps) for p, m in zip(y_plus, y_minus)]

    if "fwd" in modes:
        _, t = jvp(f, unflat(in_leaves), unflat(v))
        _assert_close(_flat_out(t), numeric, tol, atol, "JVP vs central differences")
    if "rev" in modes:
        y, pull = vjp(f, *unflat(in_leaves))
        y_leaves, y_td = tree_flatten(y)
        u = _random_like(y_leaves, rng)
        ct = pull(tree_unflatten(y_td, u) if len(u) > 1 or y_td.kind != "leaf" else u[0])
        lhs = _dot(u, numeric)
        rhs = _dot(tree_flatten(ct)[0], v)
        _assert_close([np.asarray(rhs)], [np.asarray(lhs)], tol, atol,
                      "VJP <J^T u, v> vs <u, J v>")
    if order > 1:
        if "fwd" in modes:
            def f_jvp(*xs):
                return jvp(f, xs, unflat(v))[1]
            check_grads(f_jvp, unflat(in_leaves), order - 1, modes, eps, rtol, atol, seed + 1)
        if "rev" in modes:
            y, _ = vjp(f, *unflat(in_leaves))
            y_leaves, y_td = tree_flatten(y)
            u = _random_like(y_leaves, rng)
            u_tree = tree_unflatten(y_td, u)

            def f_vjp(*xs):
                return vjp(f, *xs)[1](u_tree)
            check_grads(f_vjp, unflat(in_leaves), order - 1, modes, eps, rtol, atol, seed + 2)


def _assert_close(got, want, rtol, atol, what):
    for g, w in zip(got, want):
        g = np.asarray(g, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        if g.shape != w.shape:
            raise AssertionError(f"{what}: shape {g.shape} != {w.shape}")
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        if not np.allclose(g, w, rtol=rtol, atol=atol * scale):
            err = float(np.max(np.abs(g - w), initial=0.0))
            raise AssertionError(f"{what}: max abs error {err:.3g}\n got  {g}\n want {w}")
