"""Compressed evaluation of sparse Jacobians and Hessians: one batched pass
over the colors of a cached coloring (:mod:`dualad.mixed.patterns`), run by
the chunk runner, or replayed from a recording (:mod:`dualad.mixed.replay`)
when the whole pass fits one chunk.

Example::

    >>> import numpy as np
    >>> sparse_hessian(lambda x: np.sum(x[1:] * x[:-1]), np.ones(3)).toarray()
    array([[0., 1., 0.],
           [1., 0., 1.],
           [0., 1., 0.]])
"""
from __future__ import annotations

import numpy as np

from dualad.core.args import at_positions, scalar_checked, size_of
from dualad.core.backend import result_float_dtype
from dualad.core.registry import shape_of
from dualad.forward.api import jvp_flat
from dualad.mixed import replay
from dualad.mixed.coloring import Coloring, seed_matrix
from dualad.mixed.compile import compile_program
from dualad.mixed.fingerprint import self_contained
from dualad.mixed.patterns import _cached, coloring_for
from dualad.mixed.replay import recorded_values
from dualad.mixed.runner import ExecOptions
from dualad.reverse.api import grad, vjp
from dualad.structured.api import hessian_structured

__all__ = ["sparse_hessian", "sparse_jacobian", "structured_hessian"]

_DEFAULT = ExecOptions()
# Inputs up to which a structured pass is recorded and replayed: the replay
# saves per-primitive overhead (LJ cluster: 2.4x at 96 inputs, 1.3-1.5x at
# 384-1536; cutoff LJ at 3000 and 24000 inputs: no gain measurable), and a
# cached program keeps its index maps alive: past this size, memory for
# nothing.
STRUCTURED_REPLAY_MAX = 4096


# ============================================================================
# compressed evaluation: one batched pass over the colors
# ============================================================================
def _seeds(col: Coloring, x, start: int, stop: int):
    """Color indicators ``start:stop`` shaped ``(k,) + x.shape``."""
    s = seed_matrix(col.colors, col.n_colors, dtype=result_float_dtype(x))[start:stop]
    return s.reshape((stop - start,) + shape_of(x))


def _hessian_task(f, args: tuple, pos: int, col: Coloring):
    """``task(start, stop)``: ``H @ seeds`` for colors ``start:stop`` by one
    batched forward-over-reverse pass (rows: colors)."""
    def task(start: int, stop: int):
        x = args[pos]
        return jvp_flat(grad(at_positions(f, args, (pos,))), (x,), (_seeds(col, x, start, stop),),
                        lead_shape=(stop - start,))[1]
    return task


class _Pullback:
    """A tape's pullback with the output it was recorded for."""

    def __init__(self, out, pull):
        self.out, self._pull = out, pull

    def __call__(self, ct):
        return self._pull(ct, batched=True)     # a batch of color seeds


def _jacobian_task(f, args: tuple, pos: int, col: Coloring, pullback=None):
    """``task(start, stop)``: ``J @ seeds`` (column coloring, batched jvp)
    or ``seeds @ J`` (row coloring, batched vjp) for colors ``start:stop``."""
    def task(start: int, stop: int):
        x = args[pos]
        if col.kind == "column":
            return jvp_flat(at_positions(f, args, (pos,)), (x,), (_seeds(col, x, start, stop),),
                            lead_shape=(stop - start,))[1]
        pull = pullback
        if pull is None:            # in a worker: record the tape here
            pull = _Pullback(*vjp(at_positions(f, args, (pos,)), x))
        return pull(_seeds(col, pull.out, start, stop))[0]
    return task


def _finish(col: Coloring, pieces: list, shape: tuple, csr: bool):
    stage = getattr(getattr(pieces[0], "_level", None), "stage_call", None)
    if stage is not None and len(pieces) == 1:
        # Recorded by da.jit (no transform above): the scatter into the
        # dense or CSR result is one more recorded operation.
        return stage(lambda v: _finish(col, [v], shape, csr), pieces[0])
    pieces = [np.reshape(p, (shape_of(p)[0], -1)) for p in pieces]
    b = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)
    if csr:
        return col.to_csr(b)
    return col.to_dense(b).reshape(shape)


# ----------------------------------------------------------------------------
# the replayed single pass (see dualad.mixed.replay.record)
# ----------------------------------------------------------------------------
def _staged_positions(args: tuple, pos: int) -> list | None:
    """Arguments fed to a replay as inputs: the differentiated one and every
    other float array (their values may change between calls). ``None`` when
    another argument could carry changing values the replay would bake in
    (containers, objects): then the pass is always interpreted."""
    out = [pos]
    for i, a in enumerate(args):
        if i == pos:
            continue
        if isinstance(a, np.ndarray):
            if a.dtype.kind in "fc":
                out.append(i)
        elif not isinstance(a, (bool, int, float, complex, str, type(None))):
            return None
    return out


def _same_value(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 1 and b.size == 1 and a.shape == b.shape:
        x, y = float(a.reshape(())), float(b.reshape(()))
        return x == y or abs(x - y) <= 1e-9 * abs(y) or (x != x and y != y)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True))


def _replayed(programs: dict, kind: str, fn, args: tuple, pos: int, run_pass,
              seen: list = ()):
    """The result of a pass from a replay of the pass recorded on the first
    call (kept in ``programs``, which lives with a cache entry keyed by the
    function, shapes and structure fingerprint); ``None`` when the pass
    cannot be replayed (a value-dependent branch) or a check fails (the
    caller then runs it interpreted). ``run_pass(call)``: the pass on the
    argument tuple ``call``, returning ``(result, value of fn)``; ``seen``:
    ``fn(*args)`` when the cache key's fingerprint already evaluated it.

    Why a value check: a replay bakes in what ``fn`` captured when it was
    recorded; re-evaluating ``fn`` natively (one plain NumPy evaluation) and
    comparing with the replayed value catches a changed closure or global
    (besides the fingerprint in the cache key). A self-contained ``fn``
    (:func:`dualad.mixed.fingerprint.self_contained`) has none to change.
    """
    entry = programs.get(kind)
    if entry is False or recorded_values(args) is not args:
        return None         # (under a da.jit recording the outer program records the pass)
    staged = _staged_positions(args, pos)
    if staged is None:
        return None
    inputs = tuple(args[i] for i in staged)
    if entry is not None:
        res = entry(*inputs)
        if res is None:
            return None
        # (A self-contained fn sees nothing but its arguments: nothing to check.)
        if not self_contained(fn) and not _same_value(res[1], seen[0] if seen else fn(*args)):
            programs.pop(kind, None)
            return None
        if 0 in entry.const_outputs and type(res[0]) is np.ndarray:
            return res[0].copy()        # a constant result: never hand out the program's own
        return res[0]

    def program(*vals):
        call = list(args)
        for i, v in zip(staged, vals):
            call[i] = v
        return run_pass(tuple(call))

    try:
        values, rep = replay.record(program, inputs)
    except Exception:                 # noqa: BLE001 - any failure: no replay, same answer
        programs[kind] = False
        return None
    # Compiled to one Python function (da.jit's compiler, no fused kernels:
    # no Numba compile on a first call): temporaries die at their last use,
    # so a (colors, n) pass keeps its working set in cache (7x faster than
    # the Replay's environment list at n = 10^4, 3x at 10^5).
    programs[kind] = compile_program(rep) if rep is not None else False
    return values[0]


def _colored_pass(kind: str, f, pos: int, col: Coloring):
    """``run_pass`` of :func:`_replayed` for the compressed batch (all colors
    in one pass): a batched jvp of ``f`` (Jacobian) or of its gradient
    (Hessian, ``f`` scalar-checked), with the value of ``f``."""
    def run_pass(call: tuple):
        x = call[pos]
        seeds = _seeds(col, x, 0, col.n_colors)
        if kind == "jacobian":
            out, t = jvp_flat(at_positions(f, call, (pos,)), (x,), (seeds,),
                              lead_shape=(col.n_colors,))
            return t, out
        f_box = _Boxed(at_positions(f, call, (pos,)))
        t = jvp_flat(grad(f_box), (x,), (seeds,), lead_shape=(col.n_colors,))[1]
        return t, f_box.value
    return run_pass


class _Boxed:
    """``f`` remembering the value of its last call (a pass's function value,
    for the replay's check)."""

    __slots__ = ("f", "value")

    def __init__(self, f):
        self.f, self.value = f, None

    def __call__(self, x):
        self.value = self.f(x)
        return self.value


def structured_hessian(fn, f, args: tuple, pos: int, csr: bool, replay: bool = True):
    """The structured Hessian (:func:`dualad.structured.hessian_structured`)
    of ``f`` (``fn`` scalar-checked) w.r.t. ``args[pos]``, its single pass
    recorded on the first call and replayed after, like the colored passes:
    at small sizes the interpreted pass is mostly per-primitive overhead
    (LJ N = 32: 2.2 ms interpreted, 0.85 ms replayed). Cached per ``fn``,
    shapes and structure fingerprint; ``replay=False`` always interprets,
    and so do inputs over :data:`STRUCTURED_REPLAY_MAX` entries.

    >>> import numpy as np
    >>> f = lambda x: np.sum(x[1:] * x[:-1])
    >>> structured_hessian(f, f, (np.ones(3),), 0, False)
    array([[0., 1., 0.],
           [1., 0., 1.],
           [0., 1., 0.]])
    """
    def run_pass(call: tuple):
        f_box = _Boxed(at_positions(f, call, (pos,)))
        return hessian_structured(f_box, call[pos], csr=csr), f_box.value

    if replay and recorded_values(args) is args and size_of(args[pos]) <= STRUCTURED_REPLAY_MAX:
        kind = "structured-csr" if csr else "structured"
        seen: list = []
        store, key, programs = _cached(fn, "colorings", "replay-" + kind, args, (pos,), True,
                                       seen)
        if programs is None:
            programs = {}
            store.put(key, programs)
        h = _replayed(programs, kind, fn, args, pos, run_pass, seen)
        if h is not None:
            return h
    return run_pass(args)[0]


# ----------------------------------------------------------------------------
# the drivers
# ----------------------------------------------------------------------------
def sparse_hessian(fn, x, *, args: tuple | None = None, argnum: int = 0, csr: bool = True,
                   options: ExecOptions = _DEFAULT, replay: bool = True):
    """Hessian of scalar ``fn`` by star coloring: one batched
    forward-over-reverse pass over the colors (``options.chunk`` colors per
    pass), entries read back directly (exactly symmetric). ``csr=True``
    gives a ``scipy.sparse.csr_matrix`` ``(n, n)``, else a dense
    ``x.shape + x.shape`` array. ``args``: the full argument tuple when
    ``fn`` takes more (``x`` is then ``args[argnum]``). ``fn`` itself keys
    the caches. A single local pass is recorded on the first call and
    replayed after (``replay=False`` always interprets).

    >>> import numpy as np
    >>> h = sparse_hessian(lambda x: np.sum(x[1:] * x[:-1]), np.ones(4))
    >>> h.toarray()
    array([[0., 1., 0., 0.],
           [1., 0., 1., 0.],
           [0., 1., 0., 1.],
           [0., 0., 1., 0.]])
    """
    args = (x,) if args is None else tuple(args)
    f = scalar_checked(fn, "hessian")
    seen: list = []
    col = coloring_for(fn, args, (argnum,), "hessian", value=seen)
    shape = shape_of(args[argnum]) * 2
    k = options.chunk or max(1, col.n_colors)
    if replay and not options.chunked and k >= col.n_colors:
        b = _replayed(col.programs, "hessian", fn, args, argnum,
                      _colored_pass("hessian", f, argnum, col), seen)
        if b is not None:
            return _finish(col, [b], shape, csr)
    pieces = options.with_chunk(k).run(_hessian_task(f, args, argnum, col), col.n_colors,
                                       "sparse hessian")
    return _finish(col, pieces, shape, csr)


def sparse_jacobian(fn, x, *, args: tuple | None = None, argnum: int = 0,
                    direction: str = "auto", csr: bool = True,
                    options: ExecOptions = _DEFAULT, replay: bool = True):
    """Jacobian of array-valued ``fn`` by coloring: ``direction="fwd"``
    colors columns (one batched jvp), ``"rev"`` rows (one batched vjp),
    ``"auto"`` the fewer colors. CSR ``(n_out, n_in)`` with ``csr=True``,
    else dense ``out.shape + x.shape``.

    >>> import numpy as np
    >>> sparse_jacobian(lambda x: x[1:] * x[:-1], np.arange(1.0, 4.0), csr=False)
    array([[2., 1., 0.],
           [0., 3., 2.]])
    """
    args = (x,) if args is None else tuple(args)
    if direction == "auto":
        fwd = coloring_for(fn, args, (argnum,), "jacobian-fwd")
        rev = coloring_for(fn, args, (argnum,), "jacobian-rev")
        col = rev if rev.n_colors < fwd.n_colors else fwd
    elif direction in ("fwd", "rev"):
        col = coloring_for(fn, args, (argnum,), "jacobian-" + direction)
    else:
        raise ValueError(f"unknown direction {direction!r}; valid: 'auto', 'fwd', 'rev'")
    x = args[argnum]
    k = options.chunk or max(1, col.n_colors)
    if col.kind == "column" and replay and not options.chunked and k >= col.n_colors:
        b = _replayed(col.programs, "jacobian", fn, args, argnum,
                      _colored_pass("jacobian", fn, argnum, col))
        if b is not None:
            return _finish(col, [b], shape_of(b)[1:] + shape_of(x), csr)
    pull = None
    if col.kind == "row" and options.executor is None:   # record once, pull back per chunk
        pull = _Pullback(*vjp(at_positions(fn, args, (argnum,)), x))
    pieces = options.with_chunk(k).run(_jacobian_task(fn, args, argnum, col, pull),
                                       col.n_colors, "sparse jacobian")
    if csr:
        return _finish(col, pieces, (), True)
    if col.kind == "column":
        out_shape = shape_of(pieces[0])[1:]
    else:
        out_shape = shape_of(pull.out if pull is not None else fn(*args))
    return _finish(col, pieces, tuple(out_shape) + shape_of(x), csr)
