"""Taylor mode under vmap (issue 13 item 4): ``vmap(derivative)``, ``vmap(jet)``
and the other nestings equal Python loops, and run WITHOUT a per-example loop
inside (no primitive falls back to the loop rule, no derivative-free helper
runs per example): the Taylor rules run once on batched coefficients."""
import numpy as np
import pytest

import dualad as da
from dualad.batching import interpreter as batch_interp
from dualad.batching import rules as batch_rules

A = np.array([[2.0, 0.3], [0.1, 1.5]])
XS = np.linspace(0.1, 1.0, 5)

FUNCS = {
    "poly": lambda x: x ** 3 - 2 * x,
    "pow": lambda x: x ** 2.5,
    "pow_traced_exponent": lambda x: (1 + x) ** x,
    "abs": lambda x: np.abs(x - 0.55) * x,
    "where": lambda x: np.where(x > 0.5, np.sin(x), np.cos(x)),
    "sum_of_vector": lambda x: np.sum(np.sin(x * np.arange(3.0)) ** 2),
    "array_output": lambda x: np.stack([np.sin(x), np.exp(x)]),
    "max": lambda x: np.max(np.stack([x, x ** 2, 1 - x])),
    "prod": lambda x: np.prod(np.stack([x, x + 1, x + 2])),
    "det": lambda x: np.linalg.det(A * x + np.eye(2)),
    "solve": lambda x: np.linalg.solve(A + x * np.eye(2), np.ones(2)).sum(),
    "arctan2": lambda x: np.arctan2(x, 1 + x),
    "logaddexp": lambda x: np.logaddexp(x, 2 * x),
    "sqrt_log": lambda x: np.sqrt(x) * np.log(x),
    "cumsum": lambda x: np.cumsum(np.stack([x, x * x]))[-1],
    "matmul": lambda x: (A @ np.array([x, x ** 2]))[0],
    "tanh_mlp": lambda x: np.sum(np.tanh(np.tanh(x * np.ones(4)) @ np.ones((4, 3)))),
}


@pytest.fixture
def no_loops(monkeypatch):
    """Fail on any per-example loop inside the batching interpreter."""
    loops = []
    orig_rule_for, orig_loop = batch_rules.rule_for, batch_rules.loop_rule

    def loop_rule(prim, *args, **kwargs):      # a rule's own fallback calls this name
        loops.append(prim.name)
        return orig_loop(prim, *args, **kwargs)

    def rule_for(prim):
        rule = orig_rule_for(prim)
        return loop_rule if rule is orig_loop else rule

    orig_nondiff = batch_interp.BatchLevel.nondiff

    def nondiff(self, fn, args, kwargs):
        if not isinstance(fn, np.ufunc) and fn not in batch_interp._AXIS_FUNCS \
                and fn not in batch_interp._METADATA:
            loops.append(getattr(fn, "__name__", repr(fn)))
        return orig_nondiff(self, fn, args, kwargs)

    monkeypatch.setattr(batch_interp, "rule_for", rule_for)
    monkeypatch.setattr(batch_rules, "loop_rule", loop_rule)
    monkeypatch.setattr(batch_interp.BatchLevel, "nondiff", nondiff)
    yield loops
    assert loops == [], f"per-example loops under vmap: {loops}"


def test_the_loop_detector_detects(monkeypatch):
    """The fixture's hooks see a known per-example fallback (np.nonzero)."""
    seen = []
    orig = batch_interp.BatchLevel.nondiff

    def nondiff(self, fn, args, kwargs):
        seen.append(fn)
        return orig(self, fn, args, kwargs)
    monkeypatch.setattr(batch_interp.BatchLevel, "nondiff", nondiff)
    da.vmap(lambda x: np.sum(np.nonzero(x > -100.0)[0] * x))(np.ones((3, 4)))
    assert np.nonzero in seen


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("order", [1, 2, 4])
def test_vmap_derivative_equals_loop(name, order, no_loops):
    f = FUNCS[name]
    got = da.vmap(lambda x: da.derivative(f, x, order=order))(XS)
    want = np.stack([da.derivative(f, x, order=order) for x in XS])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sin", "mlp", "sum_exp", "two_args"])
def test_vmap_jet_equals_loop(name, no_loops):
    rng = np.random.default_rng(0)
    X, T = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    W = rng.normal(size=(3, 2))
    fns = {"sin": np.sin, "mlp": lambda x: np.tanh(x @ W),
           "sum_exp": lambda x: np.sum(np.exp(x) * x)}
    if name == "two_args":
        f = lambda x, y: np.sin(x) * np.cos(y)          # noqa: E731
        run = lambda x, t: da.jet(f, (x, x[::-1]), ([t, t * t, t], [t, t, -t]))  # noqa: E731
    else:
        f = fns[name]
        run = lambda x, t: da.jet(f, (x,), ([t, 2 * t, t * t],))   # noqa: E731
    y, series = da.vmap(run)(X, T)
    loop = [run(x, t) for x, t in zip(X, T)]
    np.testing.assert_allclose(y, np.stack([a for a, _ in loop]), rtol=1e-12)
    for k in range(3):
        np.testing.assert_allclose(series[k], np.stack([s[k] for _, s in loop]),
                                   rtol=1e-10, atol=1e-12)


def test_vmap_jet_with_shared_primal(no_loops):
    """Only the series mapped (in_axes), the primal a closure constant."""
    x0 = np.array([0.3, -0.4, 0.9])
    T = np.random.default_rng(1).normal(size=(4, 3))
    run = lambda t: da.jet(np.tanh, (x0,), ([t, t],))   # noqa: E731
    _, series = da.vmap(run)(T)
    for k in range(2):
        np.testing.assert_allclose(series[k], np.stack([run(t)[1][k] for t in T]), rtol=1e-12)


@pytest.mark.parametrize("order", [1, 3])
def test_derivative_of_vmap_equals_loop(order, no_loops):
    """The other nesting: Taylor outside, vmap inside."""
    f = lambda x: np.sum(np.tanh(x * np.ones(4)) ** 3)     # noqa: E731
    got = da.derivative(lambda t: da.vmap(f)(XS * t), 0.7, order=order)
    want = np.stack([da.derivative(lambda t: f(x * t), 0.7, order=order) for x in XS])
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_vmap_vmap_and_grad_of_vmap_derivative(no_loops):
    g = lambda t: np.exp(np.sin(t))                        # noqa: E731
    XX = np.linspace(0.1, 1.0, 12).reshape(3, 4)
    got = da.vmap(da.vmap(lambda x: da.derivative(g, x, order=3)))(XX)
    want = [[da.derivative(g, x, order=3) for x in row] for row in XX]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    gr = da.grad(lambda xs: np.sum(da.vmap(lambda x: da.derivative(np.sin, x, order=2))(xs)))(XS)
    np.testing.assert_allclose(gr, -np.cos(XS), rtol=1e-12)


def test_vmap_derivative_keeps_float32():
    x32 = XS.astype(np.float32)
    got = da.vmap(lambda x: da.derivative(np.sin, x, order=2))(x32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, -np.sin(x32), rtol=1e-5)


def test_python_branch_on_a_mapped_taylor_value_is_a_clear_error():
    with pytest.raises(TypeError, match="np.where"):
        da.vmap(lambda x: da.derivative(lambda t: t if t > 0.5 else -t, x, order=2))(XS)
