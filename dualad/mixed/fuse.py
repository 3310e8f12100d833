"""Fused elementwise kernels for recorded programs (``da.jit``).

A run of consecutive elementwise operations of one output shape (arithmetic,
``sin``, ``cos``, ``exp``, ``sqrt``, small integer powers; primal and
derivative work alike) becomes one Numba ``njit`` loop: one pass over
memory, no temporaries. Values the rest of the program needs (or a
finiteness guard tests) are written out; the others live in registers. The
gradient of ``sum(sin(x)*x**2 + exp(-x**2))`` is one loop that reads ``x``
and writes the gradient.

``sin``/``cos``/``exp`` in the loop are the vectorisable ones of
:mod:`dualad.kernels.vecmath` (plain arithmetic: LLVM turns the loop into
SIMD code, 3-6x faster than NumPy's or Numba's per-element libm calls).
They are exact on a range (``|x| <= 1.6e6`` for sin/cos, ``|x| <= 708`` for
exp); the loop counts the elements outside it and, when there are any,
the kernel is rerun with the C library's functions (an *exact* variant), so
every element is within an ulp of NumPy's value.

A run must have at least :data:`MIN_RUN` operations on arrays of
:data:`MIN_SIZE` elements or more (below that NumPy's per-call cost is
lower than a Numba call's). Runs on :data:`PARALLEL_SIZE` elements or more
whose work (elements times a cost per element, :func:`_cost`) reaches
:data:`PARALLEL_WORK` (about 2 ms of one core) run a ``parallel=True``
(``prange``) loop on Numba's threads
(``numba.get_num_threads()`` at call time: ``NUMBA_NUM_THREADS`` or
``numba.set_num_threads``; with one thread the serial loop runs). The loop
is elementwise and its reductions are integer counts (the guards), so the
results are the same bits for any thread count. Why the work bound: a
parallel loop waits for its slowest thread, which on a busy machine can be
a scheduler time slice (milliseconds); cheap loops gain little from a
second core (they are memory-bound) and lose that much. Numba's ``workqueue``
threading layer must not be entered from two threads at once: a call that
finds another thread in a parallel kernel runs the serial loop instead.

Accuracy: no ``fastmath`` (no reassociation, no contraction into FMA); each
operation is evaluated as NumPy does (integer powers by the same repeated
squaring as the ``power`` primitive), so results agree with the unfused
program to the last bit for arithmetic, and within an ulp where the vector
``sin``/``cos``/``exp`` differ from NumPy's. Kernels are cached on disk
(Numba's cache), keyed by a hash of the fused expression and of
:data:`dualad.kernels.vecmath.VERSION`, under :data:`CACHE_DIR`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np

from dualad.kernels.pool import empty
from dualad.kernels.second import cache_root
from dualad.rules.ufuncs import _power

__all__ = ["fuse_ops", "MIN_RUN", "MIN_SIZE", "PARALLEL_SIZE", "PARALLEL_WORK", "CACHE_DIR",
           "fused_kernels"]

MIN_RUN = 3
MIN_SIZE = 512            # below this a Numba call costs more than NumPy's calls
PARALLEL_SIZE = 1 << 17     # ~10^5 elements at least, and
PARALLEL_WORK = 1 << 23     # elements x cost per element (sin/cos/exp 8, other ops 1)
CACHE_DIR = Path(cache_root()) / "fused"      # one cache root with the eager kernels

# impl -> scalar expression template ({0}, {1}: operand expressions)
_EXPR = {
    np.add: "({0} + {1})", np.subtract: "({0} - {1})", np.multiply: "({0} * {1})",
    np.true_divide: "({0} / {1})", np.negative: "(-{0})", np.positive: "(+{0})",
    np.sin: "np.sin({0})", np.cos: "np.cos({0})", np.exp: "np.exp({0})",
    np.sqrt: "np.sqrt({0})",
    np.square: "({0} * {0})", np.reciprocal: "(1.0 / {0})", np.absolute: "abs({0})",
    np.tanh: "np.tanh({0})",      # on the CPU: dualad.kernels.tanh_math (vectorised)
}


def _power_expr(x: str, e) -> str | None:
    """``x ** e`` as the ``power`` primitive computes it (repeated squaring),
    so the fused value is bitwise the unfused one."""
    if type(e) is not int and not (type(e) is float and e == int(e)):
        return None
    n = int(abs(e))
    if not 1 <= n <= 32:
        return None
    result, base = None, x
    while n:
        if n & 1:
            result = base if result is None else f"({result} * {base})"
        n >>= 1
        if n:
            base = f"({base} * {base})"
    return result if e > 0 else f"(1.0 / {result})"


def _expression(impl, params, operands) -> str | None:
    if impl is _power:
        if set(params) != {"exponent"}:
            return None
        return _power_expr(operands[0], params["exponent"])
    template = _EXPR.get(impl)
    if template is None or params:
        return None
    return template.format(*operands)


def _fusable(op, meta) -> bool:
    impl, spec, params, slots, multi, guards = op
    if multi or (impl not in _EXPR and impl is not _power):
        return False
    if any(type(want) is not bool for _, want in guards):     # a value guard
        return False
    shape, dtype = meta[slots[0]]
    if dtype != np.float64 or not shape or int(np.prod(shape)) < MIN_SIZE:
        return False
    for a in spec:
        if a.__class__ is int:
            if meta[a] != (shape, dtype):
                return False
        elif type(a.value) is not float and not (
                type(a.value) is np.ndarray and a.value.shape == shape
                and a.value.dtype == np.float64):
            return False
    ops = [f"a{i}" for i in range(len(spec))]
    return _expression(impl, params, ops) is not None


_kernels: dict = {}
# Numba's workqueue threading layer aborts the process when two threads run
# parallel kernels at once: one parallel kernel at a time, the others serial.
_parallel_lock = threading.Lock()


def fused_kernels() -> int:
    """How many fused kernels this process has compiled or loaded."""
    return len(_kernels)


def _load(source: str, name: str, parallel: bool):
    key = (source, parallel)
    kern = _kernels.get(key)
    if kern is not None:
        return kern
    from numba import njit

    from dualad.kernels.tanh_math import with_fast_tanh
    source = with_fast_tanh(source)
    digest = hashlib.sha256(f"{_PRELUDE}{source}|{parallel}".encode()).hexdigest()[:24]
    mod_name = f"dualad_fused_{digest}"
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        path = CACHE_DIR / f"{mod_name}.py"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(_PRELUDE + source)
            os.replace(tmp, path)
        module = sys.modules.get(mod_name)
        if module is None:       # Numba's disk cache finds the kernel by its module
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[mod_name] = module
        fn, cache = getattr(module, name), True
    except OSError:                          # no writable cache: compile in memory
        ns: dict = {}
        exec(_PRELUDE + source, ns)
        fn, cache = ns[name], False
    kern = njit(parallel=parallel, cache=cache, nogil=True, error_model="numpy")(fn)
    _kernels[key] = kern
    return kern


_PRELUDE = ("import numpy as np\nfrom numba import prange\n"
            "from dualad.kernels import vecmath as _vm\n\n")


def _threads() -> int:
    """Numba's thread count for the calling thread (``set_num_threads``)."""
    import numba
    return numba.get_num_threads()


class _Fused:
    """A callable running one fused kernel: takes the run's array and scalar
    inputs, returns its outputs (flat kernels, reshaped back) and, last, whether
    every finiteness guard of the run holds as recorded (``guarded``: the
    compiled program tests that flag).

    Up to four compiled variants, each made on first use: the vector-math
    loop (``fast``) and the C-library one (``exact``, run when the fast loop
    reports arguments outside its range), each serial or parallel."""

    __slots__ = ("spec", "shape", "n_out", "size", "parallel", "sources", "variants",
                 "__name__")
    guarded = True

    def __init__(self, spec, shape, n_out=None):
        self.spec, self.shape = spec, shape
        self.n_out = len(spec.outs) if n_out is None else n_out
        self.size = int(np.prod(shape))
        self.parallel = self.size >= PARALLEL_SIZE and self.size * _cost(spec) >= PARALLEL_WORK
        fast = cpu_source(spec, fast=True)
        self.sources = {True: fast, False: cpu_source(spec, fast=False)}
        self.variants: dict = {}
        self.__name__ = "fused"

    def kernel(self, fast: bool = True, parallel: bool = False):
        """The compiled variant (compiled or loaded on first use)."""
        kern = self.variants.get((fast, parallel))
        if kern is None:
            kern = _load(self.sources[fast], "fused", parallel)
            self.variants[(fast, parallel)] = kern
        return kern

    def run(self, flat: list, outs: list, fast: bool = True) -> int:
        """Run one variant on flat inputs into ``outs``: 1 guards hold, 0 not,
        2 (fast loop only) some argument out of the vector math's range."""
        if self.parallel and _threads() > 1 and \
                _parallel_lock.acquire(blocking=False):
            try:
                return self.kernel(fast, True)(*flat, *outs)
            finally:
                _parallel_lock.release()
        return self.kernel(fast, False)(*flat, *outs)

    def __call__(self, *inputs):
        flat = [np.ravel(v) if type(v) is np.ndarray else v for v in inputs]
        outs = [empty((self.size,), np.float64) for _ in range(self.n_out)]   # reused buffers
        ok = self.run(flat, outs)
        if ok == 2:                  # huge arguments, infinities: the C library
            ok = self.run(flat, outs, fast=False)
        shape = self.shape
        return (*(o.reshape(shape) for o in outs), ok == 1)


class KernelSpec:
    """A fused run as data: argument names (``args``: the run's slots and
    constants), ``lines`` ``(variable, scalar expression)`` in order,
    ``outs`` ``(output name, variable)``, ``guards`` ``(variable, expected
    finiteness)`` and which arguments are scalars. Rendered for the CPU
    (:func:`cpu_source`) or CUDA (:mod:`dualad.mixed.fuse_gpu`)."""

    __slots__ = ("args", "names", "scalars", "lines", "outs", "guards")

    def __init__(self):
        self.args, self.names, self.scalars = [], [], set()
        self.lines, self.outs, self.guards = [], [], []


def kernel_spec(run, needed_after) -> KernelSpec:
    """The :class:`KernelSpec` of ``run`` (a list of recorded elementwise
    ops); ``needed_after``: slots the rest of the program reads."""
    spec = KernelSpec()
    keys: dict = {}
    produced: dict = {}
    for impl, operands, params, slots, _, guards in run:
        exprs = []
        for a in operands:
            if a.__class__ is int and a in produced:
                exprs.append(produced[a])
                continue
            k = ("s", a) if a.__class__ is int else ("c", id(a.value))
            if k not in keys:
                keys[k] = f"a{len(spec.args)}"
                spec.args.append(a)
                spec.names.append(keys[k])
                if a.__class__ is not int and type(a.value) is float:
                    spec.scalars.add(keys[k])
            name = keys[k]
            exprs.append(name if name in spec.scalars else f"{name}[i]")
        var = f"t{slots[0]}"
        spec.lines.append((var, _expression(impl, params, exprs)))
        produced[slots[0]] = var
        spec.guards += [(produced[g], want) for g, want in guards]
    spec.outs = [(f"o{k}", produced[s]) for k, s in enumerate(
        s for s in produced if s in needed_after)]
    return spec


# NumPy call -> (vector function, its range test or None: exp is exact everywhere)
_VECTOR = {"np.sin(": ("_vm.sin", "_vm.sincos_bad"), "np.cos(": ("_vm.cos", "_vm.sincos_bad"),
           "np.exp(": ("_vm.exp", None)}


def _cost(spec: KernelSpec) -> int:
    """A kernel's work per element in units of one arithmetic operation (a
    vector ``sin``/``cos``/``exp`` costs about 8), stores included."""
    return sum(8 if e.startswith(tuple(_VECTOR)) else 1 for _, e in spec.lines) + len(spec.outs)


def _vector_line(var: str, expr: str) -> tuple[str, str | None]:
    """A kernel line with :mod:`~dualad.kernels.vecmath` in place of a
    NumPy ``sin``/``cos``/``exp`` call, and the range test of its argument
    (``None``: the line has no such call, or calls ``exp``, exact
    everywhere). A line is one operation, so a call is the whole expression."""
    for head, (fn, bad) in _VECTOR.items():
        if expr.startswith(head) and expr.endswith(")"):
            arg = expr[len(head):-1]
            return f"{var} = {fn}({arg})", None if bad is None else f"{bad}({arg})"
    return f"{var} = {expr}", None


def cpu_source(spec: KernelSpec, fast: bool = True) -> str:
    """A Numba loop over ``prange`` (serial unless compiled ``parallel``):
    writes the outputs, returns 1 when every guard holds (expected finite:
    every element finite; expected not: some element not finite), else 0.
    ``fast``: vector math, and 2 when an argument was out of its range
    (the outputs are then not to be used)."""
    body, checks = [], []
    for v, e in spec.lines:
        line, bad = _vector_line(v, e) if fast else (f"{v} = {e}", None)
        body.append(f"        {line}")
        if bad is not None and bad not in checks:
            checks.append(bad)
    # one counter per range test: Numba's prange accepts one update per
    # reduction variable
    body += [f"        b{k} += {c}" for k, c in enumerate(checks)]
    body += [f"        {o}[i] = {v}" for o, v in spec.outs]
    # g_k counts the non-finite elements of guarded value k (an integer sum:
    # a reduction prange runs in parallel, the same for any thread count)
    body += [f"        g{k} += 0 if np.isfinite({v}) else 1"
             for k, (v, _) in enumerate(spec.guards)]
    init = "".join(f"    g{k} = 0\n" for k in range(len(spec.guards)))
    init += "".join(f"    b{k} = 0\n" for k in range(len(checks)))
    verdict = " and ".join(f"g{k} == 0" if want else f"g{k} > 0"
                           for k, (_, want) in enumerate(spec.guards)) or "True"
    first = next(n for n in spec.names if n not in spec.scalars)
    params = ", ".join(spec.names + [o for o, _ in spec.outs])
    # the vector math's version in the source, so its edits reach cached kernels
    stamp = f"# {_vm_version()}\n" if any("_vm." in line for line in body) else ""
    return (f"{stamp}def fused({params}):\n{init}"
            f"    for i in prange({first}.size):\n"
            + "\n".join(body)
            + (f"\n    if {' or '.join(f'b{k}' for k in range(len(checks)))}:\n        return 2"
               if checks else "")
            + f"\n    return 1 if {verdict} else 0\n")


def _vm_version() -> str:
    from dualad.kernels.vecmath import VERSION
    return VERSION


def _build(run, needed_after, shape):
    """The fused op replacing ``run`` (a list of ops): ``(kernel, spec, {},
    out slots, True, ())``; the run's finiteness guards are evaluated in the
    kernel (exactly: every element finite), which returns one flag."""
    spec = kernel_spec(run, needed_after)
    out_slots = [s for op in run for s in op[3] if s in needed_after]
    return (_Fused(spec, shape), tuple(spec.args), {}, tuple(out_slots), True, ())


def fuse_runs(ops, outputs, fusable, accept, build) -> list:
    """``ops`` with each maximal run of consecutive operations that
    ``fusable(first, op)`` admits (``first``: the run's first op, ``None``
    for an op that would start one) replaced by ``build(run, needed)`` where
    ``accept(run)``; ``needed``: the run's values that the program's outputs
    or later operations read (the rest stay inside the kernel)."""
    ops = list(ops)
    readers: dict = {}
    for k, op in enumerate(ops):
        for a in op[1]:
            if a.__class__ is int:
                readers.setdefault(a, []).append(k)
    outs = {o for o in outputs if o.__class__ is int}
    result, k = [], 0
    while k < len(ops):
        if not fusable(None, ops[k]):
            result.append(ops[k])
            k += 1
            continue
        j = k + 1
        while j < len(ops) and fusable(ops[k], ops[j]):
            j += 1
        run = ops[k:j]
        if not accept(run):
            result.extend(run)
        else:
            needed = {op[3][0] for op in run
                      if op[3][0] in outs or any(r >= j for r in readers.get(op[3][0], ()))}
            result.append(build(run, needed))
        k = j
    return result


def fuse_ops(ops, outputs, meta) -> list:
    """``ops`` (a recorded program's operations) with each run of at least
    :data:`MIN_RUN` fusable elementwise operations of one shape replaced by
    one kernel (a ``tanh`` pays alone: the kernel's is ~3x faster than
    NumPy's). ``meta``: slot -> (shape, dtype)."""
    def shape(op):
        return meta[op[3][0]][0]
    return fuse_runs(
        ops, outputs,
        lambda first, op: _fusable(op, meta) and (first is None or shape(op) == shape(first)),
        lambda run: len(run) >= MIN_RUN or any(op[0] is np.tanh for op in run),
        lambda run, needed: _build(run, needed, shape(run[0])))
