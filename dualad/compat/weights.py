"""The ``weights=`` binding of ``grad``/``value_and_grad`` (MindSpore's
``ms.grad(fn, grad_position, weights)``): gradients with respect to
:class:`dualad.compat.nn.Parameter` objects that ``fn`` reads as globals or
attributes rather than as arguments.

``reverse/`` knows positions only; here each Parameter's value becomes one
more differentiated position, and while ``fn`` runs the Parameter is bound
to its traced value (:meth:`Parameter.bound`), so NumPy code on it records
on the tape. ``dualad.grad``/``dualad.value_and_grad`` are these functions;
without ``weights`` they are exactly :func:`dualad.reverse.api.grad` and
:func:`dualad.reverse.api.value_and_grad` (no extra call layer).

Example::

    >>> import numpy as np, dualad as da
    >>> w = da.Parameter(np.array([1.0, 2.0]), name="w")
    >>> da.grad(lambda x: np.sum(w * x), None, weights=[w])(np.array([3.0, 4.0]))
    (array([3., 4.]),)
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from dualad.compat.nn import Parameter
from dualad.core.args import as_tuple_positions, check_positions, zeros_like
from dualad.reverse import api as rev

__all__ = ["grad", "value_and_grad", "weights_list", "bind_weights"]


def weights_list(weights) -> list:
    """``weights`` as a list of Parameters (``None``: empty), checked."""
    if weights is None:
        return []
    if isinstance(weights, Parameter):
        return [weights]
    ws = list(weights)
    for w in ws:
        if not isinstance(w, Parameter):
            raise TypeError(f"weights must be Parameters (got {type(w).__name__}); "
                            "pass module.trainable_params() or a list of da.Parameter")
    return ws


def bind_weights(params: list, values) -> ExitStack:
    """One context binding each Parameter to its value (see
    :meth:`Parameter.bound`), in order, unbound in reverse order."""
    stack = ExitStack()
    for p, v in zip(params, values, strict=True):
        stack.enter_context(p.bound(v))
    return stack


def _position(grad_position, argnums, weights):
    """``grad_position`` (``argnums`` is its alias); both it and ``weights``
    None is an error: nothing to differentiate."""
    if argnums is not None:
        grad_position = argnums
    if grad_position is None and weights is None:
        raise ValueError("grad_position and weights cannot both be None: "
                         "nothing to differentiate with respect to")
    return grad_position


def value_and_grad(fn: Callable, grad_position=0, weights=None, has_aux: bool = False,
                   *, argnums=None, holomorphic: bool = False) -> Callable:
    """A function returning ``(value, grads)``; see :func:`grad` for ``grads``
    and ``holomorphic``.

    >>> import numpy as np, dualad as da
    >>> v, g = da.value_and_grad(lambda x: (x ** 2).sum())(np.array([1.0, 2.0]))
    >>> float(v), g
    (5.0, array([2., 4.]))
    """
    grad_position = _position(grad_position, argnums, weights)
    if weights is None:
        return rev.value_and_grad(fn, grad_position, has_aux, holomorphic=holomorphic)
    params = weights_list(weights)
    if grad_position is not None:
        positions, tuple_pos = as_tuple_positions(grad_position)
    else:
        positions, tuple_pos = (), False

    def wrapper(*args):
        n = len(args)
        check_positions(positions, n)
        pos = tuple(p % n for p in positions)

        def with_weights(*all_args):
            with bind_weights(params, all_args[n:]):
                return fn(*all_args[:n])

        # The current value: a traced one when an enclosing grad is already
        # differentiating this Parameter (nested weights grads).
        current = [p._current() for p in params]
        diff = pos + tuple(range(n, n + len(params)))
        value, grads = rev.value_and_grad(with_weights, diff, has_aux,
                                          holomorphic=holomorphic)(*args, *current)
        grads_w = tuple(g if pr.requires_grad else zeros_like(g)
                        for g, pr in zip(grads[len(pos):], params))
        if grad_position is None:
            return value, grads_w
        grads_in = grads[:len(pos)]
        return value, (tuple(grads_in) if tuple_pos else grads_in[0], grads_w)

    return wrapper


def grad(fn: Callable, grad_position=0, weights=None, has_aux: bool = False,
         *, argnums=None, holomorphic: bool = False) -> Callable:
    """Gradient of ``fn`` (non-scalar outputs are summed; a tuple output is the
    sum of its outputs unless ``has_aux``).

    ===============  =========  =========================================
    grad_position    weights    returns
    ===============  =========  =========================================
    0                None       gradient of the first input
    (0, 1)           None       (grad_in0, grad_in1)
    None             weights    (grad_w0, grad_w1, ...)
    0                weights    (grad_in0, (grad_w0, ...))
    ===============  =========  =========================================

    With ``has_aux=True`` it returns ``(grads, aux)`` with ``aux`` a tuple.

    Complex values follow JAX: for a real-valued ``fn`` of ``z = x + iy`` the
    result is ``df/dx - i df/dy``; a complex-valued ``fn`` raises unless
    ``holomorphic=True`` (then the result is ``f'(z)``; inputs must be complex).

    >>> import numpy as np, dualad as da
    >>> float(da.grad(np.sin)(0.0))
    1.0
    """
    grad_position = _position(grad_position, argnums, weights)
    if weights is None:
        return rev.grad(fn, grad_position, has_aux, holomorphic=holomorphic)
    return rev.grads_of(value_and_grad(fn, grad_position, weights, has_aux,
                                       holomorphic=holomorphic), has_aux)
