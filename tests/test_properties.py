"""Property-based cross-mode checks (hypothesis): on random compositions of
smooth primitives and random points, forward and reverse mode agree through
<u, J v> = <J^T u, v>, and the Hessian modes (forward-over-reverse,
hyper-dual, Taylor along a line) agree with each other."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import dualad as da

UNARY = {
    "sin": np.sin,
    "tanh": np.tanh,
    "gauss": lambda x: np.exp(-x * x),
    "arctan": np.arctan,
    "soft": lambda x: np.sqrt(x * x + 1.0),
    "log1p2": lambda x: np.log1p(x * x),
    "cube": lambda x: x ** 3 / 3.0,
}
BINARY = {
    "mul": lambda a, b: a * b,
    "add": lambda a, b: a + 0.5 * b,
    "hypot": lambda a, b: np.hypot(a, b + 2.0),
    "logaddexp": np.logaddexp,
}

programs = st.lists(st.tuples(st.sampled_from(sorted(UNARY)), st.sampled_from(sorted(BINARY))),
                    min_size=1, max_size=4)
points = arrays(np.float64, st.integers(2, 5),
                elements=st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False))


def build(program):
    def f(x):
        y = x
        for unary, binary in program:
            y = BINARY[binary](UNARY[unary](y), x[::-1])
        return y
    return f


@settings(max_examples=40, deadline=None)
@given(programs, points, st.integers(0, 2**31 - 1))
def test_forward_and_reverse_agree(program, x, seed):
    f = build(program)
    rng = np.random.default_rng(seed)
    v, u = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    _, jv = da.jvp(f, (x,), (v,))
    _, pull = da.vjp(f, x)
    (jtu,) = pull(u)
    np.testing.assert_allclose(np.vdot(u, jv), np.vdot(jtu, v), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(da.jacfwd(f)(x), da.jacrev(f)(x), rtol=1e-9, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(programs, points)
def test_hessian_modes_agree(program, x):
    f = build(program)
    s = lambda x: np.sum(f(x))
    h_fr = da.hessian(s, mode="fwd-rev")(x)
    h_hd = da.hessian(s, mode="hyperdual")(x)
    np.testing.assert_allclose(h_hd, h_fr, rtol=1e-9, atol=1e-9)
    # Taylor along a line: the second coefficient is v^T H v / 2
    v = np.linspace(-1.0, 1.0, x.size)
    d2 = da.derivative(lambda t: s(x + t * v), 0.0, order=2)
    np.testing.assert_allclose(d2, v @ h_fr @ v, rtol=1e-9, atol=1e-9)
