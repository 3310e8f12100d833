"""User-defined derivative rules: ``custom_jvp``, ``custom_vjp``, ``stop_gradient``.

Each decorated function becomes a registered :class:`~dualad.core.registry.Primitive`
(one per input structure; names start with ``custom_jvp:`` / ``custom_vjp:``),
so every interpreter (Dual, tape, HyperDual, Taylor) sees it like a built-in:

* ``custom_jvp``: forward mode calls the user's rule. Reverse mode TRANSPOSES
  the rule: it records ``t -> rule(primals, t)[1]`` (linear in ``t``) on the
  tape and pulls the cotangent back through it, so the user's derivative
  formula (not the primal code) is what both modes differentiate.
* ``custom_vjp``: reverse mode runs ``fwd`` once in the forward pass (its
  residuals are kept with the tape node) and ``bwd`` in the backward pass.
  Forward mode differentiates the user's primal function itself.

Rules see unbatched tangents/cotangents: a batch of directions (jacfwd,
jacrev, Hessians) calls them once per direction. Keyword arguments are bound
to positions with the function's signature (defaults filled in), as in JAX.
The first traced call with a new argument structure also runs the function
once on the plain values, to learn its output structure (the primitive's
number of outputs). Called with no traced argument, the function just runs.

Example::

    >>> import numpy as np, dualad as da
    >>> @custom_jvp
    ... def softplus(x):
    ...     return np.log1p(np.exp(x))
    >>> @softplus.defjvp
    ... def _(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return softplus(x), t / (1.0 + np.exp(-x))
    >>> float(da.grad(softplus)(0.0))
    0.5
"""
from __future__ import annotations

import functools
import inspect
import itertools
import math
import threading
from collections.abc import Callable

import numpy as np

from dualad.batching.rules import broadcasting_rule, register_rule
from dualad.core.args import zeros_like
from dualad.core.backend import is_float_value, peel, peel_keep_batch
from dualad.core.levels import is_traced, level_of, new_level
from dualad.core.registry import bind, defprimitive, shape_of
from dualad.core.tree import tree_flatten, tree_map, tree_unflatten
from dualad.core.zero import Zero

__all__ = ["custom_jvp", "custom_vjp", "stop_gradient"]

_counter = itertools.count()


# ============================================================================
# helpers: pytrees of leaves, batches of directions
# ============================================================================
def _is_traced(leaves) -> bool:
    return any(is_traced(a) for a in leaves)


def _lead_shape(ts, likes) -> tuple:
    for t, p in zip(ts, likes):
        if t is not Zero:
            return shape_of(t)[:len(shape_of(t)) - len(shape_of(p))]
    return ()


def _fit(t, like, lead: tuple = ()):
    """A rule's output tangent/cotangent: None -> Zero; broadcast to ``lead + like``."""
    if t is None or t is Zero:
        return Zero
    shape = lead + shape_of(like)
    return t if shape_of(t) == shape else np.broadcast_to(t, shape)


def _broadcasts(shape: tuple, to: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, to) == to
    except ValueError:
        return False


def _per_direction(one: Callable, ts: list, likes: list, outs: list, lead: tuple) -> list:
    """``one(list of unbatched ts) -> list of results shaped like outs``, run
    for each direction of the batch ``lead`` and stacked back."""
    m = math.prod(lead)
    flat = [t if t is Zero else np.reshape(t, (m,) + shape_of(p)) for t, p in zip(ts, likes)]
    cols = [one([t if t is Zero else t[i] for t in flat]) for i in range(m)]
    res = []
    for k, o in enumerate(outs):
        col = [c[k] for c in cols]
        if all(c is Zero for c in col):
            res.append(Zero)
            continue
        col = [zeros_like(o) if c is Zero else c for c in col]
        res.append(np.reshape(np.stack(col), lead + shape_of(o)))
    return res


_transposing = threading.local()


def _on_rule_tangent(fn, leaves) -> bool:
    """Whether ``fn`` is being called on the tangents of its own JVP rule while
    reverse mode transposes that rule. Why: transposing ``fn`` there would
    transpose the rule again, forever; its own code is differentiated instead."""
    for owner, level in getattr(_transposing, "stack", ()):
        if owner is fn and any(getattr(a, "_level", None) is level for a in leaves):
            return True
    return False


class _CustomBase:
    """The shared half: signature binding, one primitive per input structure."""

    kind = "custom"

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        try:
            self._sig = inspect.signature(fun)
        except (TypeError, ValueError):
            self._sig = None
        self._prims: dict = {}

    def _resolve(self, args: tuple, kwargs: dict) -> tuple:
        if not kwargs:
            return args
        if self._sig is None:
            raise TypeError(f"{self.kind} function {self.__name__} takes positional arguments only")
        bound = self._sig.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.kwargs:
            raise TypeError(f"{self.kind} functions do not support keyword-only arguments "
                            f"({', '.join(bound.kwargs)})")
        return bound.args

    def _ready(self) -> None:
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        args = self._resolve(args, kwargs)
        leaves, in_td = tree_flatten(args)
        if not _is_traced(leaves) or _on_rule_tangent(self, leaves):
            return self.fun(*args)
        self._ready()
        entry = self._prims.get(in_td)
        if entry is None:
            # The output structure fixes the primitive's n_outputs: learn it
            # once per input structure from the plain values.
            out_td = tree_flatten(self.fun(*tree_unflatten(in_td, [peel(a) for a in leaves])))[1]
            entry = self._prims[in_td] = (self._make_prim(in_td, out_td), out_td)
        prim, out_td = entry
        res = bind(prim, *leaves, **self._call_params())
        return tree_unflatten(out_td, [res] if prim.n_outputs == 1 else list(res))

    def _call_params(self) -> dict:
        return {}

    def _flat_out(self, out, out_td):
        leaves, td = tree_flatten(out)
        if td != out_td:
            raise ValueError(f"{self.kind} function {self.__name__} returned the structure {td}, "
                             f"but {out_td} on an earlier call with the same argument structure")
        return leaves[0] if len(leaves) == 1 else tuple(leaves)

    def _register(self, in_td, out_td, impl, jvp, vjp):
        name = f"{self.kind}:{getattr(self.fun, '__qualname__', 'fn')}#{next(_counter)}"
        return defprimitive(name, impl, jvp=jvp, vjp=vjp, n_outputs=out_td.num_leaves)


# ============================================================================
# custom_jvp
# ============================================================================
class custom_jvp(_CustomBase):
    """A function with a user-supplied JVP rule (JAX's API).

    ``@f.defjvp def rule(primals, tangents): return out, tangent_out`` with
    ``primals``/``tangents`` tuples of the positional arguments. Reverse mode
    transposes the rule through the tape (the rule must be written with
    NumPy calls that dualad differentiates, and be linear in the tangents).

    >>> import numpy as np, dualad as da
    >>> @custom_jvp
    ... def f(x):
    ...     return np.sin(x)
    >>> @f.defjvp
    ... def f_jvp(primals, tangents):
    ...     return f(primals[0]), 2.0 * tangents[0]       # a deliberate "derivative"
    >>> float(da.jvp(f, (0.3,), (1.0,))[1]), float(da.grad(f)(0.3))
    (2.0, 2.0)
    """

    kind = "custom_jvp"

    def __init__(self, fun: Callable):
        super().__init__(fun)
        self.jvp_rule = None

    def defjvp(self, jvp: Callable) -> Callable:
        """Set the rule ``jvp(primals, tangents) -> (out, tangent_out)``."""
        self.jvp_rule = jvp
        return jvp

    def _ready(self) -> None:
        if self.jvp_rule is None:
            raise TypeError(f"no JVP rule defined for custom_jvp function {self.__name__}; "
                            "define one with @f.defjvp")

    def _tangent_out(self, in_td, primals, ts, outs: list) -> list:
        """The rule's output tangents (leaves, Zero where None) for unbatched
        ``ts``, each checked to broadcast to its output's shape."""
        n_out = len(outs)
        targs = [zeros_like(p) if t is Zero else t for p, t in zip(primals, ts)]
        res = self.jvp_rule(tree_unflatten(in_td, list(primals)), tree_unflatten(in_td, targs))
        if not isinstance(res, (tuple, list)) or len(res) != 2:
            raise TypeError(f"the JVP rule of {self.__name__} must return (out, tangent_out)")
        leaves = tree_flatten(res[1])[0]
        if len(leaves) != n_out:
            raise ValueError(f"the JVP rule of {self.__name__} returned {len(leaves)} tangent "
                             f"leaves for {n_out} outputs")
        for k, (t, o) in enumerate(zip(leaves, outs)):
            ts_, os_ = shape_of(t), shape_of(o)
            if t is not None and ts_ != os_ and not _broadcasts(ts_, os_):
                which = "" if n_out == 1 else f" {k}"
                raise ValueError(
                    f"the JVP rule {getattr(self.jvp_rule, '__qualname__', 'rule')} of "
                    f"{self.__name__} returned a tangent{which} of shape {ts_} for an output "
                    f"of shape {os_}; tangent_out must have the output's shape")
        return leaves

    def _make_prim(self, in_td, out_td):
        n_out = out_td.num_leaves

        def impl(*leaves):
            return self._flat_out(self.fun(*tree_unflatten(in_td, list(leaves))), out_td)

        def jvp(primals, tangents, out):
            outs = [out] if n_out == 1 else list(out)
            if all(t is Zero for t in tangents):
                return Zero if n_out == 1 else (Zero,) * n_out

            def one(ts):
                got = self._tangent_out(in_td, primals, ts, outs)
                return [_fit(t, o) for t, o in zip(got, outs)]

            lead = _lead_shape(tangents, primals)
            res = one(list(tangents)) if not lead else _per_direction(
                one, list(tangents), list(primals), outs, lead)
            return res[0] if n_out == 1 else tuple(res)

        def vjp(ct, primals, out, needs):
            # Transpose the rule: reverse mode through t -> rule(primals, t)[1].
            from dualad.reverse.tape import trace_vjp
            cts = [ct] if n_out == 1 else list(ct)
            outs = [out] if n_out == 1 else list(out)
            diff = [i for i, need in enumerate(needs) if need and is_float_value(primals[i])]
            if not diff or all(c is Zero for c in cts):
                return (Zero,) * len(primals)

            def linear(*ts):
                stack = _transposing.__dict__.setdefault("stack", [])
                if ts:
                    stack.append((self, ts[0]._level))
                try:
                    return rule(ts)
                finally:
                    if ts:
                        stack.pop()

            def rule(ts):
                full = [Zero] * len(primals)
                for i, t in zip(diff, ts):
                    full[i] = t
                return [None if t is Zero else t
                        for t in self._tangent_out(in_td, primals, full, outs)]

            # linear's None leaves are Zero tangents: no output check
            _, _, pull = trace_vjp(linear, [zeros_like(primals[i]) for i in diff],
                                   check_out=False)
            lead = _lead_shape(cts, outs)
            if len(lead) > 1:       # the tape takes one batch axis: fold the rest in
                m = math.prod(lead)
                cts = [c if c is Zero else np.reshape(c, (m,) + shape_of(o))
                       for c, o in zip(cts, outs)]
            got = pull(cts)
            res = [Zero] * len(primals)
            for i, g in zip(diff, got):
                res[i] = g if g is Zero or len(lead) <= 1 else np.reshape(
                    g, lead + shape_of(primals[i]))
            return tuple(res)

        return self._register(in_td, out_td, impl, jvp, vjp)


# ============================================================================
# custom_vjp
# ============================================================================
class _Stash:
    """Residuals of one call's ``fwd``, kept with the call's parameters (so
    with the tape node) and used only for the very arguments they came from."""

    __slots__ = ("args", "res")

    def __init__(self):
        self.args = self.res = None


class custom_vjp(_CustomBase):
    """A function with a user-supplied VJP (JAX's API): ``f.defvjp(fwd, bwd)``
    where ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, ct)`` returns
    a tuple with one cotangent per positional argument (None for none).
    Forward mode (jvp, jacfwd, HyperDual, Taylor) differentiates ``f`` itself.

    >>> import numpy as np, dualad as da
    >>> @custom_vjp
    ... def clip_grad(x):
    ...     return x
    >>> clip_grad.defvjp(lambda x: (x, None), lambda res, ct: (np.clip(ct, -1.0, 1.0),))
    >>> da.grad(lambda x: (3.0 * clip_grad(x)).sum())(np.ones(2))
    array([1., 1.])
    """

    kind = "custom_vjp"

    def __init__(self, fun: Callable):
        super().__init__(fun)
        self.fwd = self.bwd = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        """Set ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, ct) -> cts``."""
        self.fwd, self.bwd = fwd, bwd

    def _ready(self) -> None:
        if self.fwd is None or self.bwd is None:
            raise TypeError(f"no VJP defined for custom_vjp function {self.__name__}; "
                            "define one with f.defvjp(fwd, bwd)")

    def _call_params(self) -> dict:
        return {"stash": _Stash()}

    def _cotangents_in(self, in_td, res, cts: list, outs: list, out_td) -> list:
        ct_tree = tree_unflatten(out_td, [zeros_like(o) if c is Zero else c
                                          for c, o in zip(cts, outs)])
        got = self.bwd(res, ct_tree)
        n_args = len(in_td.children)
        if not isinstance(got, (tuple, list)) or len(got) != n_args:
            raise TypeError(f"the bwd rule of {self.__name__} must return a tuple with one "
                            f"cotangent per argument ({n_args})")
        leaves = []
        for sub_td, g in zip(in_td.children, got):
            if g is None:
                leaves.extend([Zero] * sub_td.num_leaves)
            else:
                leaves.extend(Zero if c is None else c for c in tree_flatten(g)[0])
        return leaves

    def _make_prim(self, in_td, out_td):
        n_out = out_td.num_leaves

        def impl(*leaves, stash=None):
            args = tree_unflatten(in_td, list(leaves))
            if stash is None:
                return self._flat_out(self.fun(*args), out_td)
            out, res = self.fwd(*args)
            stash.args, stash.res = leaves, res
            return self._flat_out(out, out_td)

        def jvp(primals, tangents, out, stash=None):
            # Forward mode differentiates the primal function itself.
            from dualad.forward.dual import Dual, DualLevel
            if all(t is Zero for t in tangents):
                return Zero if n_out == 1 else (Zero,) * n_out
            with new_level(DualLevel()) as level:
                ins = [p if t is Zero else Dual._make(p, t, level)
                       for p, t in zip(primals, tangents)]
                res = tree_flatten(self.fun(*tree_unflatten(in_td, ins)))[0]
                t_out = [o.tangent if level_of(o) is level else Zero for o in res]
            return t_out[0] if n_out == 1 else tuple(t_out)

        def vjp(ct, primals, out, needs, stash=None):
            cts = [ct] if n_out == 1 else list(ct)
            outs = [out] if n_out == 1 else list(out)
            if all(c is Zero for c in cts):
                return (Zero,) * len(primals)
            if (stash is not None and stash.args is not None and len(stash.args) == len(primals)
                    and all(a is b for a, b in zip(stash.args, primals))):
                res = stash.res
            else:
                # Nested (or create_graph) use: recompute the residuals from the
                # traced primals so they carry the outer derivatives.
                res = self.fwd(*tree_unflatten(in_td, list(primals)))[1]
            lead = _lead_shape(cts, outs)
            if not lead:
                got = self._cotangents_in(in_td, res, cts, outs, out_td)
            else:
                got = _per_direction(lambda cs: self._cotangents_in(in_td, res, cs, outs, out_td),
                                     cts, outs, list(primals), lead)
            return tuple(_fit(g, p, lead) if need else Zero
                         for g, p, need in zip(got, primals, needs))

        return self._register(in_td, out_td, impl, jvp, vjp)


# ============================================================================
# stop_gradient
# ============================================================================
def _stop_taylor(prim, level, xs, n, params):
    return xs[0][0]          # a constant: its higher coefficients are zero


stop_gradient_p = defprimitive("stop_gradient", lambda x: x,
                               jvp=lambda primals, tangents, out: Zero,
                               vjp=lambda ct, primals, out, needs: (Zero,),
                               taylor=_stop_taylor)
# Per example and elementwise: under vmap it acts on the batched value as is.
register_rule(stop_gradient_p, broadcasting_rule)


def stop_gradient(x):
    """``x`` cut from every derivative (every level of every transform): the
    plain value, for each leaf of a pytree.

    >>> import numpy as np, dualad as da
    >>> float(da.grad(lambda x: x * stop_gradient(x))(3.0))
    3.0
    """
    # Binding runs the primitive's zero rules at each level; the tape still
    # wraps the result in a (dead) node, so peel it to the plain value.
    return tree_map(lambda v: peel_keep_batch(stop_gradient_p(v)) if is_traced(v) else v, x)
