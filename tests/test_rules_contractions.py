"""Contractions: matmul, dot, vdot, inner, outer, tensordot, einsum, kron,
cross; forward and reverse to order 2, batched Jacobians, mixed levels."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.forward.api import jacfwd
from dualad.reverse.api import jacrev
from dualad.testing import check_grads


def _r(*shape, seed=0):
    return np.random.default_rng(seed + 7 * len(shape) + sum(shape)).standard_normal(shape)


def _check(f, *args):
    """Traced primal equals NumPy's, then derivatives to order 2 in both modes."""
    want = f(*args)
    got, _ = da.jvp(f, args, tuple(np.ones_like(a) for a in args))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.shape(got) == np.shape(want)
    check_grads(f, args, order=2, modes=("fwd", "rev"))


# ============================================================================
# matmul
# ============================================================================
MATMUL_SHAPES = [
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)),
    ((3,), (5, 3, 4)), ((5, 2, 3), (3,)), ((2, 1, 2, 3), (1, 4, 3, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul(sa, sb):
    a, b = _r(*sa), _r(*sb, seed=1)
    _check(np.matmul, a, b)
    _check(lambda a: a @ b, a)       # constant right operand
    _check(lambda b: a @ b, b)       # constant left operand (ndarray.__matmul__ defers)


def test_matmul_values():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.array([1.0, -1.0])
    np.testing.assert_array_equal(da.grad(lambda x: (a @ x).sum())(x), [4.0, 6.0])
    np.testing.assert_array_equal(jacrev(lambda x: a @ x)(x), a)
    np.testing.assert_array_equal(jacfwd(lambda x: x @ a)(x), a.T)
    # d/dA sum(A @ A) = (ones @ A.T) + (A.T @ ones)
    ones = np.ones((2, 2))
    np.testing.assert_allclose(da.grad(lambda m: (m @ m).sum())(a), ones @ a.T + a.T @ ones)


def test_matmul_errors():
    with pytest.raises(ValueError):
        da.grad(lambda x: np.matmul(x, 2.0).sum())(np.ones(3))


# ============================================================================
# dot, vdot, inner, outer, tensordot
# ============================================================================
DOT_SHAPES = [((), (4,)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)),
              ((2, 3), (3, 4)), ((2, 2, 3), (3,)), ((2, 2, 3), (5, 3, 4)), ((3,), (2, 3, 4)),
              ((2, 3), (2, 3, 4))]


@pytest.mark.parametrize("sa,sb", DOT_SHAPES, ids=[f"{a}.{b}" for a, b in DOT_SHAPES])
def test_dot(sa, sb):
    a, b = _r(*sa), _r(*sb, seed=1)
    _check(np.dot, a, b)


def test_dot_method():
    a, b = _r(2, 3), _r(3, 4)
    _check(lambda a, b: a.dot(b), a, b)


@pytest.mark.parametrize("sa,sb", [((4,), (4,)), ((2, 3), (6,)), ((2, 3), (3, 2))])
def test_vdot(sa, sb):
    _check(np.vdot, _r(*sa), _r(*sb, seed=1))


@pytest.mark.parametrize("sa,sb", [((), (3,)), ((3,), (3,)), ((2, 3), (3,)), ((2, 3), (4, 3)),
                                   ((2, 2, 3), (4, 3))])
def test_inner(sa, sb):
    _check(np.inner, _r(*sa), _r(*sb, seed=1))


@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((2, 2), (3,)), ((), (2,))])
def test_outer(sa, sb):
    _check(np.outer, _r(*sa), _r(*sb, seed=1))


@pytest.mark.parametrize("sa,sb,axes", [
    ((2, 3, 4), (3, 4, 5), 2), ((2, 3), (3, 4), 1), ((2, 3), (4,), 0),
    ((2, 3, 4), (4, 2, 5), ([0, 2], [1, 0])), ((2, 3, 4), (5, 4), (-1, -1)),
    ((3, 4), (3, 4), ((0, 1), (0, 1))),
])
def test_tensordot(sa, sb, axes):
    _check(lambda a, b: np.tensordot(a, b, axes), _r(*sa), _r(*sb, seed=1))


# ============================================================================
# einsum
# ============================================================================
EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),                      # implicit output
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),                                  # implicit trace
    ("ii->", [(3, 3)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij", [(3, 4)]),
    ("ji", [(3, 4)]),                                  # implicit: sorted -> transpose
    ("i,i", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->i", [(3, 4), (3, 4)]),
    ("ij,ij->ij", [(3, 1), (3, 4)]),                   # size-1 broadcasting
    ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (5, 3, 2)]),   # broadcast batch dims
    ("...ij,...jk", [(2, 2, 3), (3, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("i...->...", [(3, 2, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ij,jk,kl,l->i", [(2, 3), (3, 4), (4, 2), (2,)]),
    ("iij->j", [(3, 3, 2)]),
    ("iji->j", [(3, 2, 3)]),
    ("iii->i", [(3, 3, 3)]),
    ("ij,k->i", [(2, 3), (4,)]),                       # k only in one operand
    ("ii,i->i", [(3, 3), (3,)]),
    (",ij->ij", [(), (2, 3)]),
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize("subs,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(subs, shapes):
    args = [_r(*s, seed=i) for i, s in enumerate(shapes)]
    _check(lambda *xs: np.einsum(subs, *xs), *args)


def test_einsum_one_traced_operand():
    a, b, c = _r(2, 3), _r(3, 4), _r(4)
    _check(lambda b: np.einsum("ij,jk,k->i", a, b, c), b)
    _check(lambda c: np.einsum("ij,jk,k->i", a, b, c), c)


def test_einsum_operand_list_form_and_values():
    a, b = _r(2, 3), _r(3, 4)
    _check(lambda a, b: np.einsum(a, [0, 1], b, [1, 2], [0, 2]), a, b)
    _check(lambda a: np.einsum(a, [Ellipsis, 0, 0]), _r(2, 3, 3))
    m = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(da.grad(lambda m: np.einsum("ii", m))(m), np.eye(3))
    # Diagonal embedding: d/dM sum(diag(M) * w) = diag(w).
    w = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(da.grad(lambda m: np.einsum("ii->i", m) @ w)(m), np.diag(w))
    np.testing.assert_array_equal(jacrev(lambda m: np.einsum("ii->i", m))(m),
                                  jacfwd(lambda m: np.einsum("ii->i", m))(m))


def test_einsum_scalar_keeps_float32():
    x = np.ones((2, 3), dtype=np.float32)
    y, t = da.jvp(lambda x: np.einsum(",ij->ij", 2.0, x), (x,), (x,))
    assert y.dtype == np.float32 and t.dtype == np.float32
    np.testing.assert_array_equal(t, 2 * x)


# ============================================================================
# kron, cross
# ============================================================================
@pytest.mark.parametrize("sa,sb", [((3,), (2,)), ((2, 3), (2, 2)), ((2,), (2, 3)),
                                   ((2, 2, 1), (3, 2))])
def test_kron(sa, sb):
    _check(np.kron, _r(*sa), _r(*sb, seed=1))


@pytest.mark.parametrize("sa,sb,kw", [
    ((3,), (3,), {}), ((2,), (2,), {}), ((2,), (3,), {}), ((3,), (2,), {}),
    ((4, 3), (4, 3), {}), ((4, 3), (3,), {}), ((5, 1, 3), (4, 3), {}),
    ((3, 4), (4, 3), dict(axisa=0)), ((3, 4), (3, 4), dict(axis=0)),
    ((4, 3), (4, 3), dict(axisc=0)), ((2, 4), (4, 2), dict(axisa=0, axisb=1)),
])
@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
def test_cross(sa, sb, kw):
    _check(lambda a, b: np.cross(a, b, **kw), _r(*sa), _r(*sb, seed=1))


def test_cross_values():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 2.0])
    # d/da (a x b) = -[b]_x, the skew matrix of b.
    skew = np.array([[0.0, -b[2], b[1]], [b[2], 0.0, -b[0]], [-b[1], b[0], 0.0]])
    np.testing.assert_allclose(jacfwd(lambda a: np.cross(a, b))(a), -skew)
    np.testing.assert_allclose(jacrev(lambda a: np.cross(a, b))(a), -skew)


# ============================================================================
# batched Jacobians, mixed levels, dtypes
# ============================================================================
A34, B45, C4 = _r(3, 4), _r(4, 5), _r(4)
E43 = np.eye(4, 3)   # picks 3-vectors out of rows of 4 without indexing


@pytest.mark.parametrize("fn", [
    lambda x: x @ B45,
    lambda x: np.einsum("ij,jk,ik->i", x, B45, x @ B45),
    lambda x: np.dot(x.T, x),
    lambda x: np.tensordot(x, x, axes=([0], [0])),
    lambda x: np.kron(x, A34[:1]),
    lambda x: np.cross(x @ E43, A34 @ E43),
    lambda x: np.outer(x, C4) + np.inner(x, x).sum(),
], ids=["matmul", "einsum3", "dot", "tensordot", "kron", "cross", "outer+inner"])
def test_jacfwd_matches_jacrev(fn):
    x = _r(3, 4, seed=3)
    jf, jr = jacfwd(fn)(x), jacrev(fn)(x)
    assert jf.shape == np.shape(fn(x)) + x.shape
    np.testing.assert_allclose(jf, jr, rtol=1e-10, atol=1e-12)


def test_operands_at_different_levels():
    # g(x) = d/dt [sum(x @ (y + t v))] = sum(x @ v): an inner forward level
    # inside an outer transform; grad_x g = ones(3, 1) * v.sum(-1) pattern.
    y, v = _r(4, 2), _r(4, 2, seed=1)

    def g(x):
        return da.jvp(lambda yy: np.sum(x @ yy), (y,), (v,))[1]

    x = _r(3, 4)
    want = np.broadcast_to(v.sum(axis=1), (3, 4))
    np.testing.assert_allclose(da.grad(g)(x), want)
    np.testing.assert_allclose(jacfwd(g)(x), want)

    def h(x):     # reverse inside, over an einsum with a constant third operand
        return da.grad(lambda yy: np.einsum("ij,jk,k->", x, yy, C4[:2]))(y).sum()

    np.testing.assert_allclose(da.grad(h)(x), np.broadcast_to(C4[:2].sum(), (3, 4)))
    np.testing.assert_allclose(jacfwd(h)(x), np.broadcast_to(C4[:2].sum(), (3, 4)))


@pytest.mark.parametrize("fn", [
    lambda a, b: a @ b, lambda a, b: np.dot(a, b), lambda a, b: np.einsum("ij,jk->ik", a, b),
    lambda a, b: np.tensordot(a, b, 1), lambda a, b: np.kron(a, b),
    lambda a, b: np.inner(a, b.T),
    lambda a, b: np.cross(a, (b @ np.ones((4, 2), dtype=np.float32)).T),
], ids=["matmul", "dot", "einsum", "tensordot", "kron", "inner", "cross"])
def test_float32_stays_float32(fn):
    a, b = _r(2, 3).astype(np.float32), _r(3, 4).astype(np.float32)
    y, t = da.jvp(fn, (a, b), (np.ones_like(a), np.ones_like(b)))
    assert y.dtype == np.float32 and t.dtype == np.float32
    np.testing.assert_allclose(y, fn(a, b), rtol=1e-6)
    ga, gb = da.grad(lambda a, b: fn(a, b).sum(), grad_position=(0, 1))(a, b)
    assert ga.dtype == np.float32 and gb.dtype == np.float32
