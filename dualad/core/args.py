"""Helpers shared by the functional transforms: argument checks, seeding,
and turning results back into plain arrays."""
from __future__ import annotations

import numpy as np

from dualad.core.backend import check_differentiable, namespace_of, peel
from dualad.core.registry import shape_of
from dualad.core.tree import tree_leaves
from dualad.core.zero import Zero


def as_tuple_positions(argnums) -> tuple[tuple, bool]:
    """``argnums`` as a tuple of ints, and whether the caller gave a tuple."""
    if isinstance(argnums, (int, np.integer)):
        return (int(argnums),), False
    return tuple(int(a) for a in argnums), True


def check_positions(positions: tuple, n_args: int) -> None:
    for p in positions:
        if not -n_args <= p < n_args:
            raise ValueError(f"argument position {p} is out of range for {n_args} arguments")


def as_array(x):
    """An array-like for a leaf. Python floats become NumPy float64 scalars:
    scalar arithmetic on them is about twice as fast as on 0-d arrays, which
    is most of the per-op cost of scalar code (results are 0-d arrays again)."""
    if hasattr(x, "_level"):
        return x
    if type(x) is float:
        return np.float64(x)
    if isinstance(x, (int, np.integer, bool)) or not hasattr(x, "shape"):
        return np.asarray(x)
    return x


def check_tangent(primal, tangent, what: str = "tangent"):
    ps, ts = shape_of(primal), shape_of(tangent)
    if ps != ts:
        raise ValueError(f"{what} shape {ts} does not match its primal's shape {ps}")


def zeros_like(x, lead_shape: tuple = ()):
    v = peel(x)
    xp = namespace_of(v)
    dtype = getattr(v, "dtype", np.dtype(np.float64))
    if dtype.kind not in "fc":
        dtype = np.dtype(np.float64)
    return xp.zeros(tuple(lead_shape) + shape_of(x), dtype=dtype)


def materialize(value, like, lead_shape: tuple = ()):
    """``value`` unless it is the symbolic Zero, in which case real zeros."""
    if value is Zero:
        return zeros_like(like, lead_shape)
    return value


def check_float_args(args, positions, names=None) -> None:
    for p in positions:
        for leaf in tree_leaves(args[p]):
            check_differentiable(leaf, names[p] if names else f"argument {p}")


def identity_rows(x, start: int, stop: int):
    """Rows ``start:stop`` of the identity over ``x``'s entries, shaped
    ``(stop - start,) + x.shape``, in ``x``'s float dtype and array namespace:
    the seeds of every batched Jacobian/Hessian pass."""
    from dualad.core.backend import result_float_dtype
    v = peel(x)
    xp = namespace_of(v)
    n = int(np.prod(shape_of(x), dtype=np.int64))
    seeds = xp.zeros((stop - start, n), dtype=result_float_dtype(v))
    seeds[xp.arange(stop - start), xp.arange(start, stop)] = 1
    return seeds.reshape((stop - start,) + tuple(shape_of(x)))


def _is_complex_leaf(x) -> bool:
    # From the dtype only (a traced value's dtype is no read of its value).
    dtype = getattr(x, "dtype", None)
    return dtype.kind == "c" if dtype is not None else isinstance(x, complex)


def check_complex(what: str, holomorphic: bool, inputs=(), outputs=(),
                  real_inputs: bool = False) -> None:
    """JAX's rules for complex values in ``grad``/``jacrev``/``jacfwd``:
    a complex output needs ``holomorphic=True`` (``jacfwd``: a complex input
    too, ``real_inputs``), and ``holomorphic=True`` needs complex inputs."""
    if holomorphic:
        for x in tree_leaves(inputs):
            if not _is_complex_leaf(x):
                raise TypeError(f"{what}(holomorphic=True) requires complex inputs, got "
                                f"{getattr(x, 'dtype', type(x).__name__)}")
        return
    which = "inputs" if real_inputs else "outputs"
    for x in tree_leaves(inputs if real_inputs else outputs):
        if _is_complex_leaf(x):
            raise TypeError(
                f"{what} requires real-valued {which}, got {x.dtype}. For a holomorphic "
                f"function pass holomorphic=True; otherwise differentiate np.real/np.imag "
                f"(or np.abs) of the result.")


def real_part_for(ct, primal):
    """The cotangent of a real primal is real: a complex cotangent reaching a
    real input keeps its real part (the part that pairs with real tangents)."""
    if _is_complex_leaf(ct) and not _is_complex_leaf(primal):
        return np.real(ct)
    return ct
