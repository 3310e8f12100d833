"""The chunk runner: batched passes over ranges of directions, locally (with
an optional progress bar) or farmed out through any
``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``, a Dask client's
``client.get_executor()``, Ray's executor...).

A *task* is a callable ``task(start, stop) -> piece`` computing the batched
pass for directions ``start:stop``; :func:`run_chunks` calls it for every
chunk and returns the pieces in order. For an executor the task is
serialised once with ``cloudpickle`` (lambdas and closures travel by value)
and each chunk is a ``submit`` of a small module-level function, so any
executor that can pickle plain functions and bytes works.

A batched pass can also be *recorded once and replayed* (:class:`Replay`):
the primitive implementations it ran, on raw arrays, in order, without any
interpreter in between. That is what makes a repeated small pass (the
3-color Rosenbrock Hessian) cost little more than its NumPy work. A
recording is refused (``None``) if the pass read a traced *value* to make a
decision (``if x > 0``, ``argmax``, a tie test...); the one such read it
accepts is the finiteness test of ``safe_mul``, kept as a guard that is
re-checked on replay.

Example::

    >>> run_chunks(lambda a, b: list(range(a, b)), 5, 2)
    [[0, 1], [2, 3], [4]]
"""
from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable

import numpy as np

from dualad.core.args import check_outputs, identity_rows
from dualad.core.backend import all_finite_value
from dualad.core.dispatch import Tracer
from dualad.core.levels import Level, new_level
from dualad.core.registry import bind, shape_of
from dualad.core.tree import tree_flatten

__all__ = ["run_chunks", "chunk_ranges", "Progress", "Replay", "record"]


# ============================================================================
# chunk ranges
# ============================================================================
def chunk_ranges(n: int, chunk: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in steps of ``chunk``.

    >>> chunk_ranges(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    chunk = max(1, int(chunk))
    return [(s, min(s + chunk, n)) for s in range(0, max(n, 0), chunk)] or [(0, 0)]


# ============================================================================
# progress: tqdm when installed, a plain text line otherwise
# ============================================================================
class Progress:
    """A progress bar over ``total`` chunks: ``tqdm`` if importable, else a
    text fallback writing ``desc: k/total chunks`` lines to ``file``
    (stderr). ``enabled=False`` makes every method a no-op.

    >>> with Progress(2, "demo", enabled=False) as bar:
    ...     bar.update()
    """

    def __init__(self, total: int, desc: str = "", *, enabled: bool = True, file=None):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.file = file if file is not None else sys.stderr
        self.done = 0
        self._bar = None
        self._t0 = time.perf_counter()
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._write(0)
            else:
                self._bar = tqdm(total=total, desc=desc, unit="chunk", file=self.file,
                                 leave=True)

    def _write(self, done: int) -> None:
        elapsed = time.perf_counter() - self._t0
        print(f"{self.desc}: {done}/{self.total} chunks ({elapsed:.1f} s)", file=self.file,
              flush=True)

    def update(self, k: int = 1) -> None:
        if not self.enabled:
            return
        self.done += k
        if self._bar is not None:
            self._bar.update(k)
        else:
            self._write(self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


# ============================================================================
# running the chunks
# ============================================================================
def _dumps(task: Callable) -> bytes:
    """The task serialised by value (closures, lambdas and all)."""
    try:
        import cloudpickle
    except ImportError as e:            # pragma: no cover - depends on the install
        raise ImportError(
            "executor= needs cloudpickle to ship the function to the workers: "
            "pip install cloudpickle (or the 'distributed' extra)") from e
    return cloudpickle.dumps(task)


def _run_payload(payload: bytes, start: int, stop: int):
    """Worker side: rebuild the task and run one chunk (module level, so the
    executor pickles it by reference)."""
    import dualad  # noqa: F401  (fills the registry in a fresh worker)
    task = pickle.loads(payload)
    return task(start, stop)


def run_chunks(task: Callable, n: int, chunk: int, *, progress: bool = False,
               executor=None, desc: str = "chunks") -> list:
    """Run ``task(start, stop)`` over ``range(n)`` in chunks of ``chunk``;
    return the pieces in order.

    ``executor``: any object with the ``concurrent.futures.Executor``
    ``submit`` method; chunks are submitted at once and collected in order.
    ``progress=True`` shows a bar (tqdm, or plain text without it).

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as ex:
    ...     run_chunks(lambda a, b: b - a, 7, 3, executor=ex)
    [3, 3, 1]
    """
    ranges = chunk_ranges(n, chunk)
    pieces = []
    with Progress(len(ranges), desc, enabled=progress) as bar:
        if executor is None or len(ranges) == 0:
            for start, stop in ranges:
                pieces.append(task(start, stop))
                bar.update()
            return pieces
        payload = _dumps(task)
        futures = [executor.submit(_run_payload, payload, start, stop) for start, stop in ranges]
        for fut in futures:
            pieces.append(fut.result())
            bar.update()
    return pieces


# ============================================================================
# chunked transforms: dense Jacobians, Hessians and batched HVPs
# ============================================================================
def _at(fn: Callable, args: tuple, pos: int) -> Callable:
    return lambda xx: fn(*args[:pos], xx, *args[pos + 1:])


def _size(x) -> int:
    return int(np.prod(shape_of(x), dtype=np.int64))


def _cat(pieces: list):
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)


def jacobian_fwd_chunks(fn: Callable, args: tuple, pos: int, chunk: int, *,
                        progress: bool = False, executor=None):
    """Forward-mode Jacobian of ``fn`` w.r.t. ``args[pos]`` in chunks of
    ``chunk`` directions, ``out.shape + in.shape`` (pytree outputs too).

    >>> import numpy as np
    >>> jacobian_fwd_chunks(lambda x: x * x, (np.array([1.0, 2.0]),), 0, 1)
    array([[2., 0.],
           [0., 4.]])
    """
    from dualad.forward.api import _assemble, jvp_flat
    x = args[pos]

    def task(start: int, stop: int):
        return jvp_flat(_at(fn, args, pos), (x,), (identity_rows(x, start, stop),),
                        lead_shape=(stop - start,))[1]

    pieces = run_chunks(task, _size(x), chunk, progress=progress, executor=executor,
                        desc="jacobian fwd")
    return _assemble(pieces, None, shape_of(x))


def jacobian_rev_chunks(fn: Callable, args: tuple, pos: int, chunk: int, *,
                        progress: bool = False, executor=None):
    """Reverse-mode Jacobian (one array output) in chunks of ``chunk``
    output rows, ``out.shape + in.shape``. Locally the tape is recorded once;
    each executor task records its own.

    >>> import numpy as np
    >>> jacobian_rev_chunks(lambda x: x[::-1] * 2.0, (np.array([1.0, 2.0]),), 0, 1)
    array([[0., 2.],
           [2., 0.]])
    """
    from dualad.reverse.api import vjp
    x = args[pos]
    out, pull = vjp(_at(fn, args, pos), x)
    if not hasattr(out, "shape"):
        raise ValueError("a reverse-mode Jacobian needs a function with a single array output")
    out_shape = shape_of(out)
    local = executor is None

    def task(start: int, stop: int):
        p = pull if local else vjp(_at(fn, args, pos), x)[1]
        return p(identity_rows(out, start, stop))[0]

    pieces = run_chunks(task, _size(out), chunk, progress=progress, executor=executor,
                        desc="jacobian rev")
    return np.reshape(_cat(pieces), out_shape + shape_of(x))


def hessian_fwd_rev_chunks(f: Callable, args: tuple, positions: tuple, chunk: int | None,
                           default_chunk: Callable, *, progress: bool = False, executor=None):
    """Batched forward-over-reverse Hessian blocks ``blocks[i][j]`` shaped
    ``(n_i, n_j)``: for each input ``j``, chunks of identity tangents pushed
    through the reverse gradient (one jvp per chunk; ``default_chunk(n)``
    when ``chunk`` is None).

    >>> import numpy as np
    >>> hessian_fwd_rev_chunks(lambda x: np.sum(x ** 3), (np.array([1.0, 2.0]),), (0,), 1,
    ...                        None)[0][0]
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    from dualad.forward.api import jvp_flat
    from dualad.reverse.api import grad
    g = grad(f, positions)
    m = len(positions)
    blocks = [[None] * m for _ in range(m)]
    for j, pj in enumerate(positions):
        x = args[pj]
        n = _size(x)

        def task(start: int, stop: int, pj=pj, x=x):
            from dualad.core.args import materialize
            _, t = jvp_flat(_at(g, args, pj), (x,), (identity_rows(x, start, stop),),
                            lead_shape=(stop - start,))
            return [materialize(t[i], args[positions[i]], (stop - start,)) for i in range(m)]

        pieces = run_chunks(task, n, chunk or default_chunk(n), progress=progress,
                            executor=executor, desc="hessian fwd-rev")
        for i in range(m):
            # Row b of the stacked tangents is d g_i / d x_j[b]: block (i, j)
            # is its transpose.
            col = np.reshape(_cat([p[i] for p in pieces]), (n, _size(args[positions[i]])))
            blocks[i][j] = np.transpose(col)
    return blocks


def hvp_chunks(f: Callable, primals: tuple, tangents: tuple, n_dirs: int, chunk: int, *,
               progress: bool = False, executor=None) -> tuple:
    """``(grad, H @ tangents)`` for tangents with a leading batch axis of
    ``n_dirs`` directions (every leaf), in chunks of ``chunk`` directions.

    >>> import numpy as np
    >>> g, hv = hvp_chunks(lambda x: np.sum(x ** 3), (np.array([1.0, 2.0]),),
    ...                    (np.eye(2),), 2, 1)
    >>> hv[0]
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    from dualad.core.args import materialize
    from dualad.forward.api import jvp_flat
    from dualad.reverse.api import grad
    positions = tuple(range(len(primals)))
    g = grad(f, positions)

    def task(start: int, stop: int):
        out, t = jvp_flat(g, primals, tuple(v[start:stop] for v in tangents),
                          lead_shape=(stop - start,))
        return out, [materialize(ti, p, (stop - start,)) for ti, p in zip(t, primals)]

    pieces = run_chunks(task, n_dirs, chunk, progress=progress, executor=executor,
                        desc="hvp")
    grads = tuple(pieces[0][0])
    return grads, tuple(_cat([p[1][i] for p in pieces]) for i in range(len(primals)))


# ============================================================================
# record once, replay many times
# ============================================================================
# Readers of a traced value that only look at its dtype or array type (safe
# to replay: those do not change with the values).
_SAFE_READERS = {
    ("backend.py", "namespace_of"), ("backend.py", "result_float_dtype"),
    ("backend.py", "is_float_value"), ("backend.py", "check_differentiable"),
    ("dispatch.py", "dtype"), ("registry.py", "_core_standin"),
    ("args.py", "zeros_like"), ("api.py", "_cast"), ("api.py", "_cast_like"),
    ("api.py", "_ones_like"), ("contractions.py", "_operands"),
    ("contractions.py", "_dtype_of"), ("linalg.py", "dtype_of"),
}
_GUARDED_READER = ("backend.py", "all_finite_value")


class _Const:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Recording:
    def __init__(self):
        self.ops: list = []
        self.guards: dict = {}       # slot -> expected all_finite_value
        self.meta: dict = {}         # slot -> (shape, dtype) of its recorded value
        self.n_slots = 0
        self.impure: str | None = None

    def new_slot(self) -> int:
        self.n_slots += 1
        return self.n_slots - 1

    def observe(self, staged: Staged, frame) -> None:
        """A traced value was read outside the interpreter: fine for a dtype
        test, a guard for a finiteness test, else the recording is refused."""
        kind, name = classify_read(frame)
        if kind == "safe":
            return
        if kind == "finite":
            self.guards[staged.slot] = all_finite_value(staged._value)
            return
        if self.impure is None:
            self.impure = f"{name} reads a traced value"


def classify_read(frame) -> tuple[str, str]:
    """Who read a traced value (``frame``: the reader, or ``peel`` called by
    it): ``"safe"`` (dtype or array type only), ``"finite"`` (the
    finiteness test of ``safe_mul``) or ``"value"`` (anything else: the value
    may steer the computation). Also returns the reader's name.

    >>> classify_read(None)
    ('value', '?')
    """
    from dualad.core.backend import peel
    if frame is not None and frame.f_code is peel.__code__:
        frame = frame.f_back
    if frame is None:
        return "value", "?"
    name = (os.path.basename(frame.f_code.co_filename), frame.f_code.co_name)
    if name in _SAFE_READERS:
        return "safe", name[1]
    if name == _GUARDED_READER:
        return "finite", name[1]
    return "value", f"{name[1]} ({name[0]})"


class Staged(Tracer):
    """A raw value being recorded (the lowest level of a recorded pass)."""

    __slots__ = ("_value", "_level", "slot")

    def __init__(self, value, level, slot: int):
        self._value, self._level, self.slot = value, level, slot

    @property
    def primal(self):
        self._level.rec.observe(self, sys._getframe(1))
        return self._value

    @property
    def shape(self) -> tuple:
        return shape_of(self._value)

    @property
    def dtype(self):
        v = self._value
        return getattr(v, "dtype", None) or np.result_type(v)

    def __repr__(self) -> str:
        return f"Staged(slot={self.slot}, shape={self.shape})"


class StagingLevel(Level):
    """The recorder: runs each primitive on raw values and appends it to
    ``rec``, the program being recorded (the lowest level of a recorded pass)."""

    __slots__ = ("rec",)
    kind = "stage"

    def __init__(self, rec: _Recording):
        super().__init__()
        self.rec = rec

    def process(self, prim, args, params):
        level = self
        rec = self.rec
        vals, spec, foreign = [], [], False
        for a in args:
            lv = getattr(a, "_level", None)
            if lv is level:
                vals.append(a._value)
                spec.append(a.slot)
            else:
                foreign = foreign or lv is not None
                vals.append(a)
                spec.append(_Const(a))
        if foreign:                      # a tracer of a lower, persistent level
            rec.impure = rec.impure or f"{prim.name} met a tracer of another level"
            out = bind(prim, *vals, **params)
        else:
            out = prim.impl(*vals, **params)
        outs = out if prim.n_outputs > 1 else (out,)
        slots = tuple(rec.new_slot() for _ in outs)
        for slot, o in zip(slots, outs):
            rec.meta[slot] = (shape_of(o), getattr(o, "dtype", None))
        rec.ops.append((prim.impl, tuple(spec), params, slots, prim.n_outputs > 1))
        wrapped = tuple(Staged(o, level, s) for o, s in zip(outs, slots))
        return wrapped if prim.n_outputs > 1 else wrapped[0]


def _finite(v) -> bool:
    """``all_finite_value`` for the replay: a sum is finite only if every
    term is (an overflowing sum says "not finite": the caller then takes the
    interpreted path, which is always right)."""
    if type(v) is np.ndarray and v.dtype.kind == "f":
        return bool(np.isfinite(np.add.reduce(v, axis=None)))
    return all_finite_value(v)


class Replay:
    """A recorded straight-line program: ``replay(*inputs)`` returns the
    output leaves, or ``None`` when a guard fails (the caller then runs the
    interpreted path).

    >>> import numpy as np
    >>> out, rep = record(lambda x: np.sin(x) * 2.0, (np.zeros(2),))
    >>> rep(np.full(2, np.pi / 2))
    [array([2., 2.])]
    """

    __slots__ = ("inputs", "ops", "outputs", "n_slots", "shapes", "entry")

    def __init__(self, inputs, ops, outputs, n_slots, shapes, entry=()):
        self.inputs, self.ops, self.outputs = inputs, ops, outputs
        self.n_slots, self.shapes, self.entry = n_slots, shapes, entry

    def __call__(self, *inputs):
        env = [None] * self.n_slots
        for slot, v, shape in zip(self.inputs, inputs, self.shapes):
            if shape_of(v) != shape:
                raise ValueError(f"replay input of shape {shape_of(v)}, recorded for {shape}")
            env[slot] = v
        for slot, expected in self.entry:        # guards on the inputs themselves
            if all_finite_value(env[slot]) != expected:
                return None
        for impl, spec, params, slots, multi, guards in self.ops:
            out = impl(*[env[a] if a.__class__ is int else a.value for a in spec], **params)
            if multi:
                for s, o in zip(slots, out):
                    env[s] = o
            else:
                env[slots[0]] = out
            for slot, expected in guards:
                value = env[slot]
                if (_finite(value) if expected else all_finite_value(value)) != expected:
                    return None
        return [env[o] if o.__class__ is int else o.value for o in self.outputs]

    def __len__(self) -> int:
        return len(self.ops)


def _leaf_spec(leaf, level):
    if getattr(leaf, "_level", None) is level:
        return leaf.slot
    while hasattr(leaf, "_level") and getattr(leaf, "_level", None) is not level:
        leaf = leaf.primal           # a tracer left over from a finished level
    return leaf.slot if getattr(leaf, "_level", None) is level else _Const(leaf)


def record(fn: Callable, inputs: tuple) -> tuple:
    """Run ``fn(*inputs)`` (each input an array) while recording; return
    ``(output leaves, Replay or None)``. ``None`` when the run read a traced
    value to decide something (see the module notes), so a replay could
    differ. Unused operations are dropped from the program.

    >>> import numpy as np
    >>> out, rep = record(lambda x: x * x if x[0] > 0 else -x, (np.ones(2),))
    >>> rep is None
    True
    """
    rec = _Recording()
    with new_level(StagingLevel(rec)) as level:
        staged = [Staged(v, level, rec.new_slot()) for v in inputs]
        for st in staged:
            rec.meta[st.slot] = (shape_of(st._value), getattr(st._value, "dtype", None))
        out = fn(*staged)
        check_outputs(out)
        leaves = tree_flatten(out)[0]
        values = [leaf._value if getattr(leaf, "_level", None) is level else leaf
                  for leaf in leaves]
        outputs = [_leaf_spec(leaf, level) for leaf in leaves]
    if rec.impure is not None:
        return values, None
    ops, canon = _simplify(rec.ops, rec.meta)
    outputs = [canon.get(o, o) if o.__class__ is int else o for o in outputs]
    guards = {canon.get(slot, slot): ok for slot, ok in rec.guards.items()}
    kept = tuple((impl, spec, params, slots, multi,
                  tuple((s, guards[s]) for s in slots if s in guards))
                 for impl, spec, params, slots, multi in _live(ops, outputs, guards))
    input_slots = tuple(st.slot for st in staged)
    entry = tuple((s, guards[s]) for s in input_slots if s in guards)
    program = Replay(input_slots, kept, tuple(outputs), rec.n_slots,
                     tuple(shape_of(v) for v in inputs), entry)
    return values, program


def _live(ops: list, outputs: list, guards: dict) -> list:
    """The operations the outputs and the guarded values need, in order."""
    needed = {o for o in outputs if o.__class__ is int} | set(guards)
    kept = []
    for op in reversed(ops):
        if any(s in needed for s in op[3]):
            needed.update(a for a in op[1] if a.__class__ is int)
            kept.append(op)
    kept.reverse()
    return kept


def _freeze(v):
    """A hashable stand-in for a parameter or constant (arrays by identity:
    the program keeps them alive)."""
    if isinstance(v, (bool, int, float, complex, str, type(None), np.dtype)):
        return (type(v).__name__, v)
    if isinstance(v, slice):
        return ("slice", v.start, v.stop, v.step)
    if isinstance(v, (tuple, list)):
        return (type(v).__name__,) + tuple(_freeze(e) for e in v)
    if isinstance(v, dict):
        return ("dict",) + tuple(sorted((k, _freeze(e)) for k, e in v.items()))
    return ("id", id(v))


def _identity_of(impl, spec, out_meta, meta) -> int | None:
    """The slot an operation merely copies: ``1.0 * v``, ``v * 1.0``,
    ``v + 0`` or ``0 + v`` (a constant of zeros) with ``v``'s shape and dtype
    (the rules multiply by unit partials and add materialised zero tangents)."""
    if impl is not np.multiply and impl is not np.add or len(spec) != 2:
        return None
    a, b = spec
    if a.__class__ is int and b.__class__ is not int:
        slot, const = a, b.value
    elif b.__class__ is int and a.__class__ is not int:
        slot, const = b, a.value
    else:
        return None
    if isinstance(const, bool) or not isinstance(const, (int, float, np.ndarray, np.generic)):
        return None
    unit = 1 if impl is np.multiply else 0
    c = np.asarray(const)
    if c.dtype.kind not in "iuf" or not np.all(c == unit):
        return None
    return slot if meta.get(slot) == out_meta else None


def _simplify(ops: list, meta: dict) -> tuple[list, dict]:
    """Drop operations that copy a value (see :func:`_identity_of`) and
    common subexpressions (an operation repeating an earlier one on the same
    arguments: the rules often recompute a partial). Returns the ops and the
    map from dropped slots to the slots that hold their values."""
    canon: dict = {}
    seen: dict = {}
    out = []
    for impl, spec, params, slots, multi in ops:
        spec = tuple(canon.get(a, a) if a.__class__ is int else a for a in spec)
        if not multi and not params:
            same = _identity_of(impl, spec, meta.get(slots[0]), meta)
            if same is not None:
                canon[slots[0]] = same
                continue
        key = (impl, tuple(("slot", a) if a.__class__ is int else _freeze(a.value)
                           for a in spec), _freeze(params))
        prev = seen.get(key)
        if prev is not None:
            canon.update(zip(slots, prev))
            continue
        seen[key] = slots
        out.append((impl, spec, params, slots, multi))
    return out, canon
