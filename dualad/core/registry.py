"""The primitive registry: each primitive declares, side by side, its
implementation and its derivative rules. Every interpreter (Dual, HyperDual,
Taylor, the reverse tape, the sparsity tracer) reads this one table.

Rule conventions
----------------
Tangents and cotangents may carry ``lead`` leading batch axes in front of the
primal's shape (a batch of directions). Rules are written with dualad's own
dispatched NumPy calls on their arguments, so they are themselves
differentiable: that is how nested transforms get higher derivatives.

* ``partials(out, *primals, **params) -> tuple``: for elementwise primitives,
  the partial derivative w.r.t. each input (``None`` for a constant input).
  Both the JVP and the VJP (and the Taylor rule) are derived from it.
* ``jvp(primals, tangents, out, **params) -> tangent_out``: tangents are
  :data:`Zero` or arrays of shape ``lead + primal.shape``.
* ``vjp(cts, primals, out, needs, **params) -> tuple``: one cotangent (or
  ``Zero``) per input; ``needs[i]`` says whether input ``i`` wants one.
* linear primitives declare ``transpose(ct, primals, lead, **params)`` and get
  ``jvp`` = the primitive applied to the tangent with ``lead`` shifted in.

Algebraic structure is declared once, here, and the interpreters derive from
it: ``partials_use_out`` (the Taylor rule evaluates such partials degree by
degree), ``multilinear`` (linear in each operand separately: matmul, einsum,
multiply; the Taylor rule sums over splits of the degree), ``singular``.

:data:`registry` maps names to primitives for enumeration only (op tables,
meta-tests): rules and interpreters hold the Primitive objects themselves
(``sin_p``), and every per-interpreter table is keyed by them.

Example::

    >>> import numpy as np
    >>> from dualad.core.registry import registry
    >>> float(registry["sin"].impl(0.0))
    0.0
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.backend import all_finite_value
from dualad.core.levels import leaked
from dualad.core.zero import Zero, add_any, safe_mul

registry: dict[str, Primitive] = {}


class Primitive:
    """One differentiable operation and its rules."""

    __slots__ = ("name", "impl", "partials", "jvp", "vjp", "transpose", "linear",
                 "elementwise", "multilinear", "partials_use_out", "n_outputs", "singular",
                 "taylor", "sparsity", "fused")

    def __init__(self, name: str, impl: Callable, *, partials=None, jvp=None, vjp=None,
                 transpose=None, multilinear=False, partials_use_out=False, n_outputs=1,
                 singular=False, taylor=None, sparsity=None):
        self.name = name
        self.impl = impl
        self.partials = partials
        self.jvp = jvp
        self.vjp = vjp
        self.transpose = transpose
        self.linear = transpose is not None          # linear in the first argument
        self.elementwise = partials is not None
        # Linear in each array operand separately (the others held fixed).
        self.multilinear = multilinear
        # Whether ``partials`` reads its ``out`` argument (exp: ``(out,)``):
        # the Taylor rule must then evaluate them degree by degree.
        self.partials_use_out = partials_use_out
        self.n_outputs = n_outputs
        # Partials may be infinite at finite points: True, or "out" when they
        # are finite wherever the output is (multiply, divide), so one test of
        # the output replaces a test of every partial.
        self.singular = singular
        # Interpreter rules declared with the primitive (custom.py's
        # stop_gradient); the interpreters also fill them from their own
        # tables keyed by this object (forward/taylor.py, mixed/sparsity.py).
        self.taylor = taylor
        self.sparsity = sparsity
        self.fused = False            # set by kernels/: a fused value-and-partial kernel exists

    def __call__(self, *args, **params):
        return bind(self, *args, **params)

    def __repr__(self) -> str:
        return f"Primitive({self.name})"


class _Provided:
    """Primitives that core code binds but ``rules/`` declares (core may not
    import rules): each rule module sets its attribute where it declares the
    primitive. Unset, the attribute raises AttributeError: never a silent skip.
    """

    __slots__ = ("broadcast_to", "astype")


provided = _Provided()


# ----------------------------------------------------------------------------
# the fused-kernel hook: kernels/ installs ``hook(prim, x) -> (f(x), f'(x))``
# or None; interpreters ask through eval_with_partials and carry no kernel code
# ----------------------------------------------------------------------------
_fused_hook: list = [None]


def install_fused_kernel(hook: Callable | None) -> None:
    """Install (or remove, with ``None``) the evaluate-with-partials kernel hook."""
    _fused_hook[0] = hook


def eval_with_partials(prim: Primitive, primals, params) -> tuple:
    """``(out, partials)``: the primitive's value one level down, and its
    partials when a fused kernel computed both in one pass (else ``None``:
    the interpreter uses the primitive's rules).

    >>> from dualad.rules.ufuncs import sin_p
    >>> out, parts = eval_with_partials(sin_p, [0.0], {})
    >>> float(out), parts
    (0.0, None)
    """
    hook = _fused_hook[0]
    if hook is not None and prim.fused and len(primals) == 1 and not params:
        got = hook(prim, primals[0])
        if got is not None:
            return got[0], (got[1],)
    return bind(prim, *primals, **params), None


# the second-order hook: kernels/ installs ``hook(prim, x, g, lap, diag)``
# giving ``(f(x), f'(x) g, f'(x) lap + f''(x) <g, g>)`` in one fused pass, or
# None; the forward-Laplacian interpreter asks through eval_laplacian_update
_laplacian_hook: list = [None]


def install_laplacian_kernel(hook: Callable | None) -> None:
    """Install (or remove, with ``None``) the fused forward-Laplacian update hook."""
    _laplacian_hook[0] = hook


def eval_laplacian_update(prim: Primitive, x, g, lap, diag: bool):
    """``(y, g_y, lap_y)`` of a unary elementwise ``prim`` at ``x`` carrying
    first derivatives ``g`` (``(d,) + x.shape``) and a Laplacian part ``lap``
    (``x.shape``, or ``g``'s shape when ``diag``; ``Zero`` allowed) from one
    fused kernel, or ``None`` (no kernel applies: use the rules).

    >>> from dualad.rules.ufuncs import tanh_p
    >>> eval_laplacian_update(tanh_p, 0.0, Zero, Zero, False) is None
    True
    """
    hook = _laplacian_hook[0]
    if hook is None:
        return None
    return hook(prim, x, g, lap, diag)


def bind(prim: Primitive, *args, **params):
    """Run ``prim`` on ``args``: the highest traced level among them interprets it."""
    top = None
    for a in args:
        level = getattr(a, "_level", None)
        if level is not None and (top is None or level.order > top.order):
            top = level
    if top is None:
        return prim.impl(*args, **params)
    if not top.active:
        raise leaked(top)
    return top.process(prim, args, params)


# ----------------------------------------------------------------------------
# shape helpers shared by every rule
# ----------------------------------------------------------------------------
def shape_of(x) -> tuple:
    s = getattr(x, "shape", None)
    if s.__class__ is tuple:        # NumPy's shapes: no copy on this hot path
        return s
    return () if s is None else tuple(s)


def ndim_of(x) -> int:
    n = getattr(x, "ndim", None)
    return 0 if n is None else n


def lead_of(t, primal) -> int:
    """Number of leading batch axes of tangent/cotangent ``t`` over ``primal``."""
    return ndim_of(t) - ndim_of(primal)


def align(t, in_ndim: int, out_ndim: int):
    """Insert unit axes after the batch axes of ``t`` so it broadcasts like its
    primal against an output of rank ``out_ndim``."""
    extra = out_ndim - in_ndim
    if extra <= 0 or t is Zero:
        return t
    shape = shape_of(t)
    lead = len(shape) - in_ndim
    if not hasattr(t, "reshape"):     # a Python complex (np.float64 * 1j is one)
        t = np.asarray(t)
    return t.reshape(shape[:lead] + (1,) * extra + shape[lead:])


def unbroadcast(ct, in_shape: tuple, lead: int):
    """Sum ``ct`` (``lead`` batch axes + a broadcast output shape) down to
    ``lead`` batch axes + ``in_shape``: the one place broadcasting is undone."""
    if ct is Zero:
        return Zero
    shape = shape_of(ct)
    core = shape[lead:] if lead else shape
    if core == in_shape:
        return ct
    extra = len(core) - len(in_shape)
    axes = tuple(range(lead, lead + extra))
    axes += tuple(lead + extra + i for i, n in enumerate(in_shape)
                  if n == 1 and core[extra + i] != 1)
    if axes:
        ct = ct.sum(axis=axes, keepdims=True)
    return ct.reshape(shape[:lead] + tuple(in_shape))


# ----------------------------------------------------------------------------
# rule builders
# ----------------------------------------------------------------------------
def _elementwise_jvp(prim):
    singular = prim.singular

    def jvp(primals, tangents, out, **params):
        parts = prim.partials(out, *primals, **params)
        return push_partials(parts, primals, tangents, out, _needs_guard(singular, out))
    return jvp


def push_partials(parts, primals, tangents, out, check: bool = True):
    """``sum_i parts[i] * tangents[i]`` with each tangent (``lead`` batch axes
    + its primal's shape) aligned to ``out`` and the sum given ``lead +
    out.shape``: the JVP of an elementwise primitive from its partials."""
    out_shape = shape_of(out)
    out_nd = len(out_shape)
    total = Zero
    for p, x, t in zip(parts, primals, tangents):
        if t is Zero or p is None:
            continue
        total = add_any(total, safe_mul(p, align(t, ndim_of(x), out_nd), check))
    if total is not Zero:
        shape = shape_of(total)
        lead = len(shape) - out_nd
        if lead < 0 or shape[lead:] != out_shape:
            # x + c with c larger than x: the tangent must take the
            # output's shape, or its entries would be counted once.
            total = _broadcast_tangent(total, out_nd, out_shape)
    return total


def _needs_guard(singular, out) -> bool:
    """Whether safe_mul must test each partial for infinities."""
    if singular == "out":
        return not all_finite_value(out, sync=False)      # device arrays: always guard
    return bool(singular)


def _broadcast_tangent(t, out_nd: int, out_shape: tuple):
    """Broadcast a tangent whose core is smaller than the output to
    ``lead + out_shape`` (the batch axes of ``t`` are those beyond ``out_nd``
    once aligned)."""
    shape = shape_of(t)
    lead = max(len(shape) - out_nd, 0)
    t = align(t, len(shape) - lead, out_nd)
    return provided.broadcast_to(t, shape=out_shape, lead=lead)


def _elementwise_vjp(prim):
    singular = prim.singular

    def vjp(ct, primals, out, needs, **params):
        parts = prim.partials(out, *primals, **params)
        lead = lead_of(ct, out)
        check = _needs_guard(singular, out)
        cts = []
        for p, x, need in zip(parts, primals, needs):
            if need and p is not None:
                cts.append(unbroadcast(safe_mul(p, ct, check), shape_of(x), lead))
            else:
                cts.append(Zero)
        return cts
    return vjp


def _linear_jvp(prim):
    def jvp(primals, tangents, out, **params):
        t = tangents[0]
        if t is Zero:
            return Zero
        lead = lead_of(t, primals[0]) + params.pop("lead", 0)
        return bind(prim, t, *primals[1:], lead=lead, **params)
    return jvp


def _linear_vjp(prim):
    def vjp(ct, primals, out, needs, **params):
        lead0 = params.pop("lead", 0)
        lead = lead_of(ct, out) + lead0
        if lead0:
            # Recorded on a batched tangent: the transpose must see the core
            # input (shape and dtype are all a linear transpose reads), else
            # the lead0 axes would be counted twice.
            primals = (_core_standin(primals[0], lead0),) + tuple(primals[1:])
        return (prim.transpose(ct, primals, lead, **params),) + (Zero,) * (len(primals) - 1)
    return vjp


def _core_standin(x, lead: int):
    """A zero-cost array with ``x``'s dtype and its shape minus ``lead`` axes."""
    from dualad.core.backend import dtype_of, namespace_of
    xp = namespace_of(x)
    return xp.broadcast_to(xp.zeros((), dtype=dtype_of(x)), shape_of(x)[lead:])


def defprimitive(name: str, impl: Callable, **rules) -> Primitive:
    """Register a primitive and return it (bind it to a module-level name,
    ``sin_p = defprimitive("sin", ...)``). Elementwise ones give ``partials``
    (and ``partials_use_out=True`` when they read ``out``); linear ones
    (linear in their first argument, the others constant) give ``transpose``;
    the rest give ``jvp`` and ``vjp`` (and ``multilinear=True`` when linear in
    each operand separately). Missing rules are derived here."""
    prim = Primitive(name, impl, **rules)
    if prim.elementwise:
        prim.jvp = prim.jvp or _elementwise_jvp(prim)
        prim.vjp = prim.vjp or _elementwise_vjp(prim)
    if prim.linear:
        prim.jvp = prim.jvp or _linear_jvp(prim)
        prim.vjp = prim.vjp or _linear_vjp(prim)
    registry[name] = prim
    return prim


def missing_rules() -> list[str]:
    """Names of registered primitives lacking a forward or reverse rule."""
    return [n for n, p in registry.items() if p.jvp is None or p.vjp is None]
