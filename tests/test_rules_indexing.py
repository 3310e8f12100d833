"""Indexing and joining rules: getitem/scatter_add, take, flips, diagonals,
concatenate and friends, in forward and reverse mode, to second order."""
import numpy as np
import pytest

import dualad as da  # noqa: F401  (fills the rule tables)
from dualad.forward import Dual
from dualad.forward.api import jacfwd, jvp
from dualad.reverse.api import grad, jacrev, vjp
from dualad.testing import check_grads

RNG = np.random.default_rng(42)
V = RNG.standard_normal(6)
M = RNG.standard_normal((4, 5))
T = RNG.standard_normal((3, 4, 5))
S = np.asarray(RNG.standard_normal())          # a 0-d input
MASK_V = np.array([True, False, True, True, False, True])
MASK_M = RNG.standard_normal((4, 5)) > 0
MASK_ROWS = np.array([True, False, True, True])


def fd_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian, shape ``out.shape + x.shape``."""
    y = np.asarray(f(x))
    jac = np.zeros(y.shape + x.shape)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        jac[(Ellipsis,) + i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)
    return jac


def check_all(f, x):
    """Values equal NumPy's, gradients match FD to order 2, and batched
    Jacobians agree between jacfwd, jacrev and finite differences."""
    g = lambda z: f(z) ** 2 * 0.5 + f(z)          # noqa: E731  (nonlinear: 2nd order is nonzero)
    v = RNG.standard_normal(x.shape)
    out, _ = jvp(f, (x,), (v,))
    np.testing.assert_array_equal(out, f(x))
    check_grads(g, (x,), order=2, modes=("fwd", "rev"))
    jf, jr = jacfwd(g)(x), jacrev(g)(x)
    np.testing.assert_allclose(jf, jr, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jf, fd_jacobian(g, x), rtol=1e-6, atol=1e-7)


# ============================================================================
# getitem: basic, fancy, masks, separated fancy indices
# ============================================================================
GETITEM_CASES = [
    ("v int", V, lambda x: x[2]),
    ("v negative int", V, lambda x: x[-1]),
    ("v slice", V, lambda x: x[1:4]),
    ("v reversed", V, lambda x: x[::-1]),
    ("v negative step", V, lambda x: x[4:0:-2]),
    ("v empty negative step", V, lambda x: x[-10::-1]),
    ("v newaxis", V, lambda x: x[None, :, None]),
    ("v repeated fancy", V, lambda x: x[[0, 0, 3, 0]]),
    ("v 2-D index array", V, lambda x: x[np.array([[1, 2], [2, 1]])]),
    ("v negative fancy", V, lambda x: x[[-1, -1, 0]]),
    ("v mask", V, lambda x: x[MASK_V]),
    ("v traced mask", V, lambda x: x[x > 0]),
    ("v argsort", V, lambda x: x[np.argsort(x)]),
    ("v empty list", V, lambda x: x[[]]),
    ("m row", M, lambda x: x[1]),
    ("m scalar", M, lambda x: x[1, 2]),
    ("m column", M, lambda x: x[:, 2]),
    ("m steps", M, lambda x: x[::-1, ::2]),
    ("m ellipsis newaxis", M, lambda x: x[..., None]),
    ("m pairs", M, lambda x: x[[0, 2, 0], [1, 1, 1]]),
    ("m repeated rows", M, lambda x: x[[0, 0, 1]]),
    ("m repeated columns", M, lambda x: x[:, [3, 0, 3]]),
    ("m mask", M, lambda x: x[MASK_M]),
    ("m row mask", M, lambda x: x[MASK_ROWS]),
    ("m mask and slice", M, lambda x: x[MASK_ROWS, 1:]),
    ("m int reversed", M, lambda x: x[-1, ::-1]),
    ("t ellipsis", T, lambda x: x[..., 1]),
    ("t int ellipsis newaxis", T, lambda x: x[0, ..., None]),
    ("t separated fancy", T, lambda x: x[[0, 1, 0], :, [2, 2, 4]]),
    ("t int and array separated", T, lambda x: x[1, :, [0, 3, 3]]),
    ("t adjacent int and array", T, lambda x: x[:, 1, [0, 3, 3]]),
    ("t fancy then reversed", T, lambda x: x[:, [1, 1], ::-1]),
    ("t newaxis separates", T, lambda x: x[[0, 2], None, [1, 1]]),
    ("t broadcast index arrays", T, lambda x: x[[[0], [1]], :, [[1, 2, 2]]]),
    ("t 3-D mask", T, lambda x: x[T > 0.5]),
    ("t list of ints", T, lambda x: x[[2, 0]]),
]


@pytest.mark.parametrize("name,x,f", GETITEM_CASES, ids=[c[0] for c in GETITEM_CASES])
def test_getitem(name, x, f):
    check_all(f, x)


def test_scatter_accumulates_repeated_indices():
    g = grad(lambda x: x[[0, 0, 0, 3]].sum())(V)
    np.testing.assert_array_equal(g, [3.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    g = grad(lambda x: (x[[1, 1], :, [2, 2]] * 2.0).sum())(T)
    want = np.zeros_like(T)
    want[1, :, 2] = 4.0
    np.testing.assert_array_equal(g, want)


def test_separated_fancy_batched_matches_numpy_layout():
    f = lambda x: x[[0, 2], :, [1, 4]]                      # noqa: E731
    jf, jr = jacfwd(f)(T), jacrev(f)(T)
    assert jf.shape == (2, 4, 3, 4, 5)
    want = np.zeros((2, 4, 3, 4, 5))
    for b, (i, k) in enumerate([(0, 1), (2, 4)]):
        for j in range(4):
            want[b, j, i, j, k] = 1.0
    np.testing.assert_array_equal(jf, want)
    np.testing.assert_array_equal(jr, want)


def test_second_order_batched_all_combinations():
    def g(x):
        y = x * x
        return np.concatenate([y[[0, 1], :, [2, 2]], y[1, ::-1, 1:3].T], axis=0)
    h_ff = jacfwd(jacfwd(g))(T)
    for h in (jacrev(jacfwd(g))(T), jacfwd(jacrev(g))(T), jacrev(jacrev(g))(T)):
        np.testing.assert_allclose(h, h_ff, atol=1e-12)
    # d2/dx2 of x_ijk^2 is 2 on the selected entries.
    assert h_ff[0, 0, 0, 0, 2, 0, 0, 2] == 2.0


def test_integer_tracer_as_index_is_peeled():
    idx = Dual(np.array([2, 0, 2]), np.zeros(3))
    out = Dual(V, np.ones(6))[idx]
    np.testing.assert_array_equal(out.primal, V[[2, 0, 2]])
    np.testing.assert_array_equal(out.tangent, np.ones(3))


def test_identity_keys_return_input():
    seen = []

    def f(x):
        seen.append((x[...] is x, x[:] is x))
        return x
    jvp(f, (M,), (M,))
    assert seen == [(True, True)]


def test_setitem_on_tracer_updates_functionally():
    def f(x):
        x[0] = 1.0
        return x
    _, t = jvp(f, (V,), (V,))
    np.testing.assert_allclose(t, np.r_[0.0, V[1:]])
    np.testing.assert_allclose(grad(lambda x: f(x).sum())(V), np.r_[0.0, np.ones(len(V) - 1)])


@pytest.mark.parametrize("key,err", [
    ((7,), IndexError),
    ((0, 0), IndexError),
    ((np.array([True, False]),), IndexError),
    ((Ellipsis, Ellipsis), IndexError),
    ((np.array([0.5]),), IndexError),
])
def test_bad_keys_raise(key, err):
    with pytest.raises(err):
        jvp(lambda x: x[key], (V,), (V,))


# ============================================================================
# take, take_along_axis, compress, delete
# ============================================================================
FUNC_CASES = [
    ("take flat", M, lambda x: np.take(x, [0, 7, 7, 19])),
    ("take axis", T, lambda x: np.take(x, [1, 1, 0], axis=1)),
    ("take scalar", M, lambda x: np.take(x, 3, axis=-1)),
    ("take wrap", V, lambda x: np.take(x, [7, -8, 2], mode="wrap")),
    ("take clip", V, lambda x: np.take(x, [9, -3, 2], mode="clip")),
    ("take_along_axis", M, lambda x: np.take_along_axis(x, np.argsort(M, axis=1), axis=1)),
    ("take_along_axis 3-D", T, lambda x: np.take_along_axis(x, np.argsort(T, axis=0)[:2], 0)),
    ("take_along_axis None", M, lambda x: np.take_along_axis(x, np.array([3, 3, 0]), None)),
    ("compress", M, lambda x: np.compress([True, False, True], x, axis=1)),
    ("extract", M, lambda x: np.extract(MASK_M, x)),
    ("delete", M, lambda x: np.delete(x, [0, 2], axis=1)),
    ("flip all", T, lambda x: np.flip(x)),
    ("flip int", T, lambda x: np.flip(x, 1)),
    ("flip tuple", T, lambda x: np.flip(x, (0, -1))),
    ("fliplr", M, np.fliplr),
    ("flipud", M, np.flipud),
    ("rot90", M, np.rot90),
    ("rot90 k3 axes", T, lambda x: np.rot90(x, 3, axes=(1, 2))),
    ("rot90 k2", M, lambda x: np.rot90(x, 2)),
    ("roll flat", M, lambda x: np.roll(x, 3)),
    ("roll axis", T, lambda x: np.roll(x, -2, axis=2)),
    ("roll tuples", T, lambda x: np.roll(x, (1, 2, 1), axis=(0, 2, 0))),
    ("roll zero", V, lambda x: np.roll(x, 6)),
    ("diagonal", M, np.diagonal),
    ("diagonal offsets", M, lambda x: np.diagonal(x, 2) + np.diagonal(x, -1)[:3]),
    ("diagonal axes", T, lambda x: np.diagonal(x, 1, 0, 2)),
    ("diagonal method", T, lambda x: x.diagonal(0, -1, -2)),
    ("trace", M, lambda x: np.trace(x)),
    ("trace 3-D", T, lambda x: np.trace(x, -1, 1, 2)),
    ("trace method", M, lambda x: x.trace(1)),
    ("diag 1-D", V, np.diag),
    ("diag 1-D k", V, lambda x: np.diag(x, 2)),
    ("diag 1-D negative k", V, lambda x: np.diag(x, -1)),
    ("diag 2-D", M, lambda x: np.diag(x, 1)),
    ("diagflat", M[:2], np.diagflat),
    ("triu", M, np.triu),
    ("triu k", M, lambda x: np.triu(x, 1)),
    ("tril", M, np.tril),
    ("tril negative k", T, lambda x: np.tril(x, -1)),
    ("repeat flat", M, lambda x: np.repeat(x, 2)),
    ("repeat axis", T, lambda x: np.repeat(x, 3, axis=1)),
    ("repeat counts", M, lambda x: np.repeat(x, [1, 0, 2, 3], axis=0)),
    ("repeat method", V, lambda x: x.repeat(2)),
    ("repeat 0-d", S, lambda x: np.repeat(x, 3)),
    ("tile int", V, lambda x: np.tile(x, 3)),
    ("tile grows rank", V, lambda x: np.tile(x, (2, 2))),
    ("tile short reps", T, lambda x: np.tile(x, (2, 1))),
    ("tile ones", V, lambda x: np.tile(x, (1, 1))),
]


@pytest.mark.parametrize("name,x,f", FUNC_CASES, ids=[c[0] for c in FUNC_CASES])
def test_index_functions(name, x, f):
    check_all(f, x)


# ============================================================================
# joins and splits
# ============================================================================
C = RNG.standard_normal((4, 2))
JOIN_CASES = [
    ("concatenate", M, lambda x: np.concatenate([x, 2.0 * x, M[:2]])),
    ("concatenate axis 1", M, lambda x: np.concatenate([x, C, x[:, :1] ** 2], axis=1)),
    ("concatenate axis -1", T, lambda x: np.concatenate([x, x[..., :2]], axis=-1)),
    ("concatenate None", M, lambda x: np.concatenate([x, V, x[0]], axis=None)),
    ("concatenate single", V, lambda x: np.concatenate([x])),
    ("stack", M, lambda x: np.stack([x, np.sin(x), M])),
    ("stack axis -1", V, lambda x: np.stack([x, x * x], axis=-1)),
    ("stack scalars", S, lambda x: np.stack([x, 1.0, x * x])),
    ("hstack 1-D", V, lambda x: np.hstack([x, V[:2], 3.0])),
    ("hstack 2-D", M, lambda x: np.hstack([x, C])),
    ("vstack", V, lambda x: np.vstack([x, V, x * 2.0])),
    ("dstack", M, lambda x: np.dstack([x, M])),
    ("column_stack", V, lambda x: np.column_stack([x, V, x * x])),
    ("append", M, lambda x: np.append(x, V)),
    ("append axis", M, lambda x: np.append(x, x[:1], axis=0)),
    ("atleast_1d", S, np.atleast_1d),
    ("atleast_2d", V, np.atleast_2d),
    ("atleast_3d", M, np.atleast_3d),
    ("atleast many", V, lambda x: np.concatenate(np.atleast_1d(x, S))),
]


@pytest.mark.parametrize("name,x,f", JOIN_CASES, ids=[c[0] for c in JOIN_CASES])
def test_joins(name, x, f):
    check_all(f, x)


SPLIT_CASES = [
    ("split", V, lambda x: np.split(x, 3)),
    ("split list", M, lambda x: np.split(x, [1, 3], axis=1)),
    ("array_split uneven", T, lambda x: np.array_split(x, 3, axis=1)),
    ("array_split negative cut", V, lambda x: np.array_split(x, [-2])),
    ("hsplit", M, lambda x: np.hsplit(x, [2])),
    ("hsplit even", M[:, :4], lambda x: np.hsplit(x, 2)),
    ("vsplit", M, lambda x: np.vsplit(x, [3])),
    ("dsplit", T, lambda x: np.dsplit(x, [1, 4])),
]


@pytest.mark.parametrize("name,x,f", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_splits(name, x, f):
    want = f(x)
    out, _ = jvp(f, (x,), (x,))
    assert isinstance(out, list) and len(out) == len(want)
    for got, ref in zip(out, want, strict=True):
        np.testing.assert_array_equal(got, ref)
    check_grads(lambda z: [p * p for p in f(z)], (x,), order=2)
    # Sum of squares of all pieces = sum of squares of x.
    g = grad(lambda z: sum((p * p).sum() for p in f(z)))(x)
    np.testing.assert_allclose(g, 2.0 * x, rtol=1e-14)
    # The pieces, flattened and joined, are a permutation of x.
    flat = lambda z: np.concatenate([p.ravel() for p in f(z)])  # noqa: E731
    jf, jr = jacfwd(flat)(x), jacrev(flat)(x)
    np.testing.assert_array_equal(jf, jr)
    perm = flat(np.arange(x.size, dtype=float).reshape(x.shape)).astype(int)
    np.testing.assert_array_equal(jf.reshape(x.size, x.size), np.eye(x.size)[perm])


def test_split_uneven_raises():
    with pytest.raises(ValueError, match="equal division"):
        jvp(lambda x: np.split(x, 4), (V,), (V,))


def test_concatenate_two_traced_inputs_and_levels():
    f = lambda x, y: np.concatenate([x, y * x[:1], V])       # noqa: E731
    check_grads(f, (V[:3], V[3:]), order=2)
    # A tracer from an inner transform (higher level) joined with an outer one.
    def outer(x):
        inner = jvp(lambda y: np.concatenate([y * y, x]), (x,), (np.ones_like(V),))[1]
        return (inner * np.concatenate([x, x])).sum()
    # inner = [2x, 0] (the x-part is constant inside), so outer = 2 * sum(x^2).
    np.testing.assert_allclose(grad(outer)(V), 4.0 * V, rtol=1e-14)
    check_grads(outer, (V,), order=2)


def test_concatenate_batched_tangent_with_unbatched_one():
    x = Dual(V[:3], np.ones((2, 3)))
    y = Dual(V[3:], np.full(3, 5.0))
    out = np.concatenate([x, y, V])
    want = np.concatenate([np.ones((2, 3)), np.full((2, 3), 5.0), np.zeros((2, 6))], axis=1)
    np.testing.assert_array_equal(out.tangent, want)


# ============================================================================
# dtypes: float32 stays float32
# ============================================================================
F32_CASES = [
    lambda x: x[[0, 0, 2]],
    lambda x: x[1:, ::-1],
    lambda x: np.hstack([x.ravel(), 0.0]),
    lambda x: np.stack([x, x]),
    lambda x: np.concatenate([x, x], axis=None),
    lambda x: np.roll(x, 1, axis=0),
    lambda x: np.tile(x, 2),
    lambda x: np.triu(x),
    lambda x: np.diag(np.diagonal(x)),
    lambda x: np.repeat(x, [1, 2, 0], axis=0),
    lambda x: np.take_along_axis(x, np.zeros((3, 1), dtype=int), 1),
]


@pytest.mark.parametrize("i", range(len(F32_CASES)))
def test_float32_stays_float32(i):
    f = F32_CASES[i]
    x = M[:3, :3].astype(np.float32)
    out, t = jvp(f, (x,), (np.ones_like(x),))
    assert out.dtype == np.float32 and t.dtype == np.float32
    np.testing.assert_allclose(t, f(np.ones_like(x)), rtol=1e-6)
    y, pull = vjp(f, x)
    (ct,) = pull(np.ones_like(y))
    assert ct.dtype == np.float32
    assert jacrev(f)(x).dtype == np.float32
    assert jacfwd(f)(x).dtype == np.float32
