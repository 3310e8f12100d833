"""Record once, replay many times: the staging interpreter and its safety
contract (the one place that decides whether a recorded pass may be reused).

A pass run under :class:`StagingLevel` executes every primitive's
implementation on raw arrays and appends it to a straight-line program; a
:class:`Replay` runs that program again on new inputs of the same signature
with no tracer, tape or dispatch in between. That is what makes a repeated
small pass (the 3-color Rosenbrock Hessian) cost little more than its NumPy
work, and it is the base ``da.jit`` builds on.

SAFETY CONTRACT (everything that makes a replay equal to a fresh run)
----------------------------------------------------------------------
A recorded program is reused only at inputs with the recorded shapes and
dtypes. Within that, a traced value (a :class:`Staged`, and likewise the
sparsity tracer :class:`dualad.mixed.sparsity.Pattern`) can be looked at in
exactly three ways:

1. **Metadata, not observed.** ``registry.shape_of`` and the core accessors
   ``backend.dtype_of``, ``value_type``, ``namespace_of``,
   ``result_float_dtype``, ``is_float_value`` (and ``Tracer.shape/.dtype``)
   read the tracer's type, shape and dtype without touching its numbers.
   They walk down through ``_value`` (``Tracer._observing``), so they are
   free. They are fixed by the signature, so a replay cannot differ.
2. **The finiteness test, guarded.** ``backend.all_finite_value`` (the
   0*inf test of ``safe_mul`` and the singular ops) is the one value read a
   recording accepts: it calls ``level.observe_finite(tracer, answer)``; the
   staging level stores the answer as a guard on that slot, re-checked on
   replay (a failed guard makes ``Replay.__call__`` return ``None`` and the
   caller runs the interpreted path, which is always right).
3. **Everything else observes the value.** Any read of ``.primal`` (hence
   ``peel``, ``bool(x)``, ``argsort``, conversions...) calls
   ``level.observe_read(tracer)``. A value of at most
   :data:`MAX_GUARDED_READ` elements (a branch's condition, a scalar)
   becomes a :class:`ValueGuard`: the replay holds only where that value is
   the same, so whatever was decided from it holds too. A larger one makes
   the recording *impure* and :func:`record` returns ``None`` for the
   program (the sparsity level marks its pattern *volatile*: valid at this
   point only). Comparisons and the other derivative-free NumPy functions
   (``x > 0``, ``np.sign``) are recorded as operations
   (:meth:`StagingLevel.stage_call`, through ``dispatch``): ``if x > 0:``
   reads only the one boolean, and ``np.where(x > 0, ...)`` reads nothing.

Nothing else is trusted: no caller inspection, no list of "safe" functions.
Adding a reader that needs only metadata means using an accessor of (1);
anything that reads ``.primal`` is safe by construction (it only costs the
reuse). A tracer of another, lower persistent level met during recording
also makes the recording impure.

Example::

    >>> import numpy as np
    >>> out, rep = record(lambda x: np.sin(x) * 2.0, (np.zeros(2),))
    >>> rep(np.full(2, np.pi / 2))
    [array([2., 2.])]
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.args import check_outputs
from dualad.core.backend import finite_value
from dualad.core.dispatch import ObservingTracer
from dualad.core.levels import Level, new_level
from dualad.core.registry import bind, shape_of
from dualad.core.tree import tree_flatten, tree_unflatten

__all__ = ["Staged", "StagingLevel", "Replay", "record"]


class _Const:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class Staged(ObservingTracer):
    """A raw value being recorded (the lowest level of a recorded pass).
    ``.primal`` is an observed read (contract point 3); metadata goes
    through ``_value`` without one (point 1)."""

    __slots__ = ("_value", "_level", "slot")

    def __init__(self, value, level, slot: int):
        self._value, self._level, self.slot = value, level, slot

    def __repr__(self) -> str:
        return f"Staged(slot={self.slot}, shape={self.shape})"


class StagingLevel(Level):
    """The recorder: runs each primitive on raw values and appends it to the
    program being recorded (the lowest level of a recorded pass).

    State: ``ops`` (``(impl, spec, params, out slots, multi)`` in order),
    ``meta`` (slot -> recorded shape and dtype), ``guards`` (slot -> the
    finiteness answer seen while recording), ``impure`` (``None``, or why
    the program may not be replayed)."""

    __slots__ = ("ops", "meta", "guards", "n_slots", "impure")
    kind = "stage"

    def __init__(self):
        super().__init__()
        self.ops: list = []
        self.meta: dict = {}
        self.guards: dict = {}
        self.n_slots = 0
        self.impure: str | None = None

    def new_slot(self, value) -> int:
        self.meta[self.n_slots] = (shape_of(value), getattr(value, "dtype", None))
        self.n_slots += 1
        return self.n_slots - 1

    # -- the contract's two hooks (see the module notes) -------------------
    def observe_finite(self, staged: Staged, ok: bool) -> None:
        """A finiteness test of a recorded value: kept as a replay guard."""
        if self.guards.get(staged.slot).__class__ is not ValueGuard:   # (that one implies it)
            self.guards[staged.slot] = ok

    def observe_read(self, staged: Staged) -> None:
        """Any other read of a recorded value: a small value (a branch's
        condition, a scalar) becomes a guard on that exact value; a larger
        one means the program may not be reused."""
        v = staged._value
        if type(v) in _GUARDABLE and getattr(v, "size", 1) <= MAX_GUARDED_READ:
            self.guards[staged.slot] = ValueGuard(v)
            return
        if self.impure is None:
            self.impure = (f"the value of slot {staged.slot} (shape "
                           f"{shape_of(staged._value)}) was read")

    def process(self, prim, args, params):
        level = self
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
            level.impure = level.impure or f"{prim.name} met a tracer of another level"
            out = bind(prim, *vals, **params)
        else:
            out = prim.impl(*vals, **params)
        outs = out if prim.n_outputs > 1 else (out,)
        slots = tuple(level.new_slot(o) for o in outs)
        level.ops.append((prim.impl, tuple(spec), params, slots, prim.n_outputs > 1))
        wrapped = tuple(Staged(o, level, s) for o, s in zip(outs, slots))
        return wrapped if prim.n_outputs > 1 else wrapped[0]

    def stage_call(self, fn: Callable, *args, n_outputs: int = 1):
        """Record ``fn(*args)`` (a plain function of the raw values, with no
        derivative, that does not steer the computation: e.g.
        :func:`dualad.core.args.as_result` turning a result scalar into a
        0-d array, or the scatter of Hessian entries into their matrix) as
        one more operation: a replay repeats it. ``n_outputs > 1``: ``fn``
        returns that many values (a tuple of Staged comes back; a fused
        forward-Laplacian update gives ``(y, g_y, lap_y)``)."""
        vals, spec = [], []
        for a in args:
            if getattr(a, "_level", None) is self:
                vals.append(a._value)
                spec.append(a.slot)
            else:
                vals.append(a)
                spec.append(_Const(a))
        out = fn(*vals)
        if n_outputs > 1:
            slots = tuple(self.new_slot(o) for o in out)
            self.ops.append((fn, tuple(spec), {}, slots, True))
            return tuple(Staged(o, self, s) for o, s in zip(out, slots))
        slot = self.new_slot(out)
        self.ops.append((fn, tuple(spec), {}, (slot,), False))
        return Staged(out, self, slot)


def recorded_values(args):
    """``args`` (a pytree) with each value being recorded (a :class:`Staged`
    of an active staging level) replaced by its raw value; ``args`` itself
    when it holds no tracer; ``None`` when it holds another tracer. The
    planner and the sparsity detection of a transform recorded by
    ``da.jit`` run on these (they must not observe the recorded values)."""
    leaves, tree = tree_flatten(args)
    raw, staged = [], False
    for leaf in leaves:
        level = getattr(leaf, "_level", None)
        if level is not None:
            if type(level) is not StagingLevel or not level.active:
                return None
            leaf, staged = leaf._value, True
        raw.append(leaf)
    return tree_unflatten(tree, raw) if staged else args


def refuse_recording(args) -> None:
    """Mark the recording that ``args`` belong to impure (a decision was
    taken from their values)."""
    for leaf in tree_flatten(args)[0]:
        if type(getattr(leaf, "_level", None)) is StagingLevel:
            leaf._level.observe_read(leaf)
            return


MAX_GUARDED_READ = 16      # elements: a read of a larger value refuses the recording
_GUARDABLE = frozenset((np.ndarray, np.bool_, np.float64, np.float32, np.int64, np.int32,
                        np.intp, bool, int, float))


class ValueGuard:
    """A replay guard on the exact value a recording read (contract point 3
    for small values): the replay holds only where the value is the same,
    so whatever the reader decided from it holds too.

    >>> ValueGuard(np.bool_(True)).holds(np.bool_(True)), ValueGuard(1.5).holds(2.0)
    (True, False)
    """

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value.copy() if type(value) is np.ndarray else value

    def holds(self, v) -> bool:
        w = self.value
        if type(v) is not type(w):
            return False
        if type(w) is np.ndarray:
            return v.shape == w.shape and v.dtype == w.dtype and bool(
                np.array_equal(v, w, equal_nan=w.dtype.kind in "fc"))
        return bool(v == w) or (v != v and w != w)


def _guard_holds(value, expected) -> bool:
    """A replay guard: a ValueGuard, or the finiteness answer (a bool)."""
    if expected.__class__ is ValueGuard:
        return expected.holds(value)
    return (_finite(value) if expected else finite_value(value)) == expected


def _finite(v) -> bool:
    """``all_finite_value`` for the replay: a sum is finite only if every
    term is (an overflowing sum says "not finite": the caller then takes the
    interpreted path, which is always right)."""
    if type(v) is np.ndarray and v.dtype.kind == "f":
        return bool(np.isfinite(np.add.reduce(v, axis=None)))
    return finite_value(v)


class Replay:
    """A recorded straight-line program: ``replay(*inputs)`` returns the
    output leaves, or ``None`` when a guard fails (the caller then runs the
    interpreted path).

    >>> import numpy as np
    >>> out, rep = record(lambda x: np.sin(x) * 2.0, (np.zeros(2),))
    >>> rep(np.full(2, np.pi / 2))
    [array([2., 2.])]
    """

    __slots__ = ("inputs", "ops", "outputs", "n_slots", "signature", "entry", "meta")

    def __init__(self, inputs, ops, outputs, n_slots, signature, entry=(), meta=None):
        self.inputs, self.ops, self.outputs = inputs, ops, outputs
        self.n_slots, self.signature, self.entry = n_slots, signature, entry
        self.meta = meta          # slot -> recorded (shape, dtype) (da.jit's fuser reads it)

    def __call__(self, *inputs):
        env = [None] * self.n_slots
        for slot, v, sig in zip(self.inputs, inputs, self.signature):
            if (shape_of(v), getattr(v, "dtype", None)) != sig:
                raise ValueError(f"replay input of shape {shape_of(v)} and dtype "
                                 f"{getattr(v, 'dtype', None)}, recorded for {sig}")
            env[slot] = v
        for slot, expected in self.entry:        # guards on the inputs themselves
            if not _guard_holds(env[slot], expected):
                return None
        for impl, spec, params, slots, multi, guards in self.ops:
            out = impl(*[env[a] if a.__class__ is int else a.value for a in spec], **params)
            if multi:
                for s, o in zip(slots, out):
                    env[s] = o
            else:
                env[slots[0]] = out
            for slot, expected in guards:
                if not _guard_holds(env[slot], expected):
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
    >>> out, rep = record(lambda x: x[np.argsort(x)], (np.ones(20),))   # reads 20 values
    >>> rep is None
    True
    """
    with new_level(StagingLevel()) as level:
        staged = [Staged(v, level, level.new_slot(v)) for v in inputs]
        out = fn(*staged)
        check_outputs(out)
        leaves = tree_flatten(out)[0]
        values = [leaf._value if getattr(leaf, "_level", None) is level else leaf
                  for leaf in leaves]
        outputs = [_leaf_spec(leaf, level) for leaf in leaves]
    if level.impure is not None:
        return values, None
    ops, canon = _simplify(level.ops, level.meta)
    outputs = [canon.get(o, o) if o.__class__ is int else o for o in outputs]
    guards = {canon.get(slot, slot): ok for slot, ok in level.guards.items()}
    kept = tuple((impl, spec, params, slots, multi,
                  tuple((s, guards[s]) for s in slots if s in guards))
                 for impl, spec, params, slots, multi in _live(ops, outputs, guards))
    input_slots = tuple(st.slot for st in staged)
    entry = tuple((s, guards[s]) for s in input_slots if s in guards)
    program = Replay(input_slots, kept, tuple(outputs), level.n_slots,
                     tuple(level.meta[st.slot] for st in staged), entry, level.meta)
    return values, program


def _live(ops: list, outputs: list, guards: dict) -> list:
    """The operations the outputs and the guarded values need, in order. A
    multi-output call some of whose outputs nothing needs is replaced by its
    ``impl.prune(live mask)`` when it has one (a call that skips writing them)."""
    needed = {o for o in outputs if o.__class__ is int} | set(guards)
    kept = []
    for op in reversed(ops):
        live = tuple(s in needed for s in op[3])
        if any(live):
            needed.update(a for a in op[1] if a.__class__ is int)
            if op[4] and not all(live) and hasattr(op[0], "prune"):
                op = (op[0].prune(live),) + tuple(op[1:])
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
