"""SciPy optimisation with exact derivatives: :func:`minimize` and
:func:`least_squares` supply ``jac``, ``hess`` / ``hessp`` and the Jacobian
from dualad, in the form each SciPy method takes.

- ``jac``: one :func:`dualad.value_and_grad` pass per point; the value is
  cached by ``x`` so SciPy's separate ``fun`` and ``jac`` calls cost one pass.
- ``hess``: dense from :func:`dualad.hessian` (the planner picks the mode), a
  ``scipy.sparse`` CSR matrix when the planner finds the Hessian sparse, or a
  ``LinearOperator`` of Hessian-vector products (``hess="operator"``).
- ``hessp``: :func:`dualad.hvp` (forward-over-reverse), for the Krylov
  methods on large problems.

>>> import numpy as np
>>> from dualad.optimize import minimize
>>> def rosen(x):
...     return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
>>> res = minimize(rosen, np.zeros(5), method="Newton-CG")
>>> res.x.round(2), res.success
(array([1., 1., 1., 1., 1.]), True)
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

import dualad as da

__all__ = ["minimize", "least_squares", "HESS_METHODS", "HESSP_METHODS"]

# SciPy methods that take a Hessian (as a matrix) / a Hessian-vector product.
HESS_METHODS = {"newton-cg", "dogleg", "trust-ncg", "trust-krylov", "trust-exact",
                "trust-constr"}
HESSP_METHODS = {"newton-cg", "trust-ncg", "trust-krylov", "trust-constr"}
_DENSE_ONLY = {"dogleg", "trust-exact"}       # factorise or invert the matrix
OPERATOR_METHODS = {"newton-cg", "trust-constr"}     # take a LinearOperator
# trust-ncg and trust-krylov take `hess` dense only: a sparse Hessian goes in as
# hessp = H(x) @ p, with H(x) computed once per point.
_SPARSE_AS_HESSP = {"trust-ncg", "trust-krylov"}
HESS_KINDS = ("auto", "dense", "sparse", "operator", "hessp", "none")
# Above this many variables the Krylov methods get H @ p products instead of a
# dense matrix (when the Hessian is not sparse): n HVPs per Hessian would cost
# more than the few CG iterations a step takes.
HESSP_MIN_N = 500


def _unwrap(x):
    """``hvp`` returns ``(g, Hv)`` or, in older versions, ``((g,), (Hv,))``."""
    return x[0] if isinstance(x, tuple) and len(x) == 1 else x


def _csr(transform: Callable, f: Callable) -> Callable:
    """``transform`` (:func:`dualad.hessian` or :func:`dualad.jacobian`) of
    ``f`` in sparse mode returning a ``scipy.sparse`` CSR matrix: the one
    place that names the flag (``sparse=True``, renamed ``csr=True`` in newer
    versions)."""
    import inspect
    flag = "csr" if "csr" in inspect.signature(transform).parameters else "sparse"
    return transform(f, mode="sparse", **{flag: True})


class _Objective:
    """``f`` of a flat vector, with value and gradient from one pass, cached
    by ``x`` (SciPy calls ``fun(x)`` then ``jac(x)`` at the same point)."""

    def __init__(self, f: Callable, shape: tuple, args: tuple):
        self.shape, self.args = shape, args
        self.f = lambda x: f(x.reshape(shape), *args)
        self._vg = da.value_and_grad(self.f)
        self._x = None
        self.n_passes = 0          # value_and_grad evaluations (for reports)

    def _eval(self, x):
        if self._x is None or not np.array_equal(x, self._x):
            v, g = self._vg(np.array(x, dtype=float))
            self._x, self._v, self._g = np.array(x, dtype=float), float(v), np.asarray(g)
            self.n_passes += 1
        return self._v, self._g

    def fun(self, x):
        return self._eval(x)[0]

    def jac(self, x):
        return self._eval(x)[1]

    def hessp(self, x, p):
        g_hv = da.hvp(self.f, (np.asarray(x, float),), (np.asarray(p, float),))
        return np.asarray(_unwrap(g_hv[1]))


def _hess_kind(method: str, hess: str, f: Callable, x0: np.ndarray) -> str:
    """Which form of second derivative to hand to ``method``."""
    if hess not in HESS_KINDS:
        raise ValueError(f"minimize: hess={hess!r}; valid: {', '.join(HESS_KINDS)}")
    if method not in HESS_METHODS or hess == "none":
        return "none"
    if hess != "auto":
        if method in _DENSE_ONLY and hess != "dense":
            raise ValueError(f"minimize: method {method!r} needs a dense Hessian, not {hess!r}")
        if hess == "hessp" and method not in HESSP_METHODS:
            raise ValueError(f"minimize: method {method!r} takes no hessp")
        if hess == "operator" and method not in OPERATOR_METHODS:
            raise ValueError(f"minimize: method {method!r} takes no LinearOperator Hessian; "
                             "use hess='hessp', 'sparse' or 'dense'")
        return hess
    if method in _DENSE_ONLY:
        return "dense"
    if da.plan(f, x0, kind="hessian").mode == "sparse":
        return "sparse"
    return "hessp" if x0.size >= HESSP_MIN_N else "dense"


def minimize(f: Callable, x0, method: str = "BFGS", *, args: tuple = (), hess: str = "auto",
             **kw):
    """``scipy.optimize.minimize(f, x0, method=method, ...)`` with exact
    ``jac`` and, for the methods that use one, ``hess`` or ``hessp``.

    ``f(x, *args)`` is plain NumPy code returning a scalar; ``x0`` may have
    any shape (``res.x`` has it too). ``hess``: ``"auto"`` (dense for
    ``trust-exact``/``dogleg``; sparse CSR when the planner finds the Hessian
    sparse; Hessian-vector products for large problems; dense otherwise),
    ``"dense"``, ``"sparse"``, ``"operator"`` (a ``LinearOperator`` of HVPs),
    ``"hessp"`` or ``"none"``. Other keywords go to SciPy. The result has
    ``nfev``/``njev`` from SciPy and ``n_grad_passes`` (value-and-gradient
    passes actually run).

    >>> import numpy as np
    >>> res = minimize(lambda x: np.sum((x - 3.0) ** 2), np.zeros((2, 2)), method="L-BFGS-B")
    >>> res.x.round(6)
    array([[3., 3.],
           [3., 3.]])
    """
    import scipy.optimize as so
    from scipy.sparse.linalg import LinearOperator

    x0 = np.asarray(x0, dtype=float)
    obj = _Objective(f, x0.shape, tuple(args))
    m = method.lower() if isinstance(method, str) else method
    kind = _hess_kind(m, hess, obj.f, x0.ravel()) if isinstance(m, str) else "none"
    extra: dict = {}
    if kind == "dense":
        h = da.hessian(obj.f)
        extra["hess"] = lambda x: np.asarray(h(np.asarray(x, float)))
    elif kind == "sparse":
        h = _csr(da.hessian, obj.f)
        if m in _SPARSE_AS_HESSP:
            last: dict = {}

            def hessp(x, p):
                if "x" not in last or not np.array_equal(last["x"], x):
                    last["x"], last["h"] = np.array(x, float), h(np.asarray(x, float))
                return last["h"] @ p
            extra["hessp"] = hessp
        else:
            extra["hess"] = lambda x: h(np.asarray(x, float))
    elif kind == "operator":
        n = x0.size

        def op(x):
            return LinearOperator((n, n), matvec=lambda p: obj.hessp(x, np.ravel(p)),
                                  dtype=float)
        extra["hess"] = op
    elif kind == "hessp":
        extra["hessp"] = obj.hessp
    res = so.minimize(obj.fun, x0.ravel(), method=method, jac=obj.jac, **extra, **kw)
    res.x = res.x.reshape(x0.shape)
    res.n_grad_passes = obj.n_passes
    res.hess_kind = kind
    return res


def least_squares(fun: Callable, x0, *, args: tuple = (), jac_sparse: bool | None = None,
                  **kw):
    """``scipy.optimize.least_squares(fun, x0, jac=...)`` with the exact
    Jacobian of the residuals from :func:`dualad.jacobian`: a CSR matrix
    when the planner finds it sparse (or ``jac_sparse=True``; never with
    ``method="lm"``, which needs a dense one), dense otherwise.

    >>> import numpy as np
    >>> t = np.linspace(0, 1, 20)
    >>> y = 2.0 * np.exp(-1.5 * t)
    >>> res = least_squares(lambda p: p[0] * np.exp(-p[1] * t) - y, np.ones(2))
    >>> res.x.round(8)
    array([2. , 1.5])
    """
    import scipy.optimize as so

    x0 = np.asarray(x0, dtype=float)
    shape = x0.shape

    def r(x):
        return np.ravel(fun(x.reshape(shape), *args))

    if jac_sparse is None:
        jac_sparse = kw.get("method", "trf") != "lm" and \
            da.plan(r, x0.ravel(), kind="jacobian").mode == "sparse"
    jac_fn = _csr(da.jacobian, r) if jac_sparse else da.jacobian(r)

    def jac(x):
        j = jac_fn(np.asarray(x, float))
        return j if jac_sparse else np.asarray(j).reshape(-1, x.size)

    res = so.least_squares(r, x0.ravel(), jac=jac, **kw)
    res.x = res.x.reshape(shape)
    return res
