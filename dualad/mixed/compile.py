"""Compile a recorded program (:class:`dualad.mixed.replay.Replay`) into one
Python function: each operation becomes a direct call on local variables,
values die at their last use (``del``), and the finiteness guards become
``if`` tests. This is what ``da.jit`` runs on a hit: no environment list, no
per-operation argument unpacking, and temporaries freed as early as in the
hand-written NumPy code (which keeps the working set in cache).

Runs of elementwise operations can be handed to :mod:`dualad.mixed.fuse`
first, which replaces each run by one fused kernel call.

>>> import numpy as np
>>> from dualad.mixed.replay import record
>>> _, rep = record(lambda x: np.sin(x) * 2.0, (np.zeros(2),))
>>> run = compile_program(rep)
>>> run(np.full(2, np.pi / 2))
[array([2., 2.])]
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.args import as_result
from dualad.core.backend import finite_value
from dualad.mixed.replay import ValueGuard, _finite

__all__ = ["compile_program", "program_parts"]


def program_parts(rep) -> tuple:
    """``(inputs, ops, outputs, entry)`` of a Replay, ops as tuples
    ``(impl, spec, params, out slots, multi, guards)``; constants in specs and
    outputs are objects with a ``value``."""
    return rep.inputs, list(rep.ops), list(rep.outputs), tuple(rep.entry)


def _last_uses(ops, outputs) -> dict:
    """op index -> slots read there for the last time (and not outputs)."""
    keep = {o for o in outputs if o.__class__ is int}
    last: dict = {}
    for k, op in enumerate(ops):
        for a in op[1]:
            if a.__class__ is int:
                last[a] = k
        for s, _ in op[5]:
            last[s] = max(last.get(s, k), k)
    dies: dict = {}
    for slot, k in last.items():
        if slot not in keep:
            dies.setdefault(k, []).append(slot)
    return dies


# Arithmetic on NumPy float64 scalars written as Python operators: the same
# IEEE operation (np.float64's own operators), without a ufunc call (~0.5 us
# each: a Taylor program of 100 scalar operations spends most of its time there).
_INFIX = {np.add: "{0} + {1}", np.subtract: "{0} - {1}", np.multiply: "{0} * {1}",
          np.true_divide: "{0} / {1}", np.negative: "-{0}"}
_F64 = np.dtype(np.float64)


def _scalar_infix(impl, spec, params, multi, meta, pyf=frozenset()) -> str | None:
    """The operator template for ``impl`` when every operand is a float64
    scalar and one of them a NumPy one or a value the program holds as a
    Python float (``pyf``: the same number the ufunc gives), else None."""
    template = _INFIX.get(impl)
    if template is None or params or multi or meta is None:
        return None
    numpy_scalar = False
    for a in spec:
        if a.__class__ is int:
            shape, dtype = meta.get(a, (None, None))
            if shape != () or dtype not in (_F64, None):
                return None
            numpy_scalar = numpy_scalar or dtype == _F64 or a in pyf
        else:
            v = a.value
            if type(v) is int and abs(v) < 2**53:        # converts exactly
                continue
            if type(v) is not float and type(v) is not np.float64:
                return None
            numpy_scalar = numpy_scalar or type(v) is np.float64
    return template if numpy_scalar else None


def _as_python_float(impl, spec, params, slots, multi, meta) -> bool:
    """Whether a ufunc call's 0-d float64 result is held as a Python float:
    the arithmetic that follows then costs ~30 ns an operation instead of
    ~75 ns for np.float64 (the W7 Taylor program is ~95 of them); the values
    are the same IEEE doubles."""
    return (type(impl) is np.ufunc and not params and not multi and meta is not None
            and meta.get(slots[0]) == ((), _F64))


def compile_program(rep, ops=None) -> Callable:
    """One Python function running ``rep``'s program (``ops``: a rewritten
    operation list, e.g. with fused kernels, else the Replay's own). It takes
    the inputs and returns the output leaves, or ``None`` when a finiteness
    guard fails (as ``Replay.__call__``)."""
    inputs, own_ops, outputs, entry = program_parts(rep)
    ops = own_ops if ops is None else ops
    ns: dict = {"_finite": _finite, "_all_finite": finite_value}
    lines = []
    args = ", ".join(f"v{s}" for s in inputs)
    lines.append(f"def run({args}):")

    def guard(slot, expected):
        if expected.__class__ is ValueGuard:
            ns[f"g{slot}"] = expected
            lines.append(f"    if not g{slot}.holds(v{slot}): return None")
        elif expected:
            lines.append(f"    if not _finite(v{slot}): return None")
        else:
            lines.append(f"    if _all_finite(v{slot}): return None")

    for slot, expected in entry:
        guard(slot, expected)

    def ref(a, name):
        if a.__class__ is int:
            return f"v{a}"
        v = a.value
        if (type(v) is float and v == v and abs(v) != float("inf")) or (
                type(v) is int and abs(v) < 2**53):
            # a literal (repr round-trips exactly): no global lookup
            return repr(v) if v >= 0 else f"({v!r})"
        ns[name] = a.value
        return name

    dies = _last_uses(ops, outputs)
    meta = getattr(rep, "meta", None)

    def free(k):
        """Free temporaries at their last use (arrays only: a ``del`` of a
        scalar frees nothing worth its ~30 ns; W7 had 50 of them)."""
        gone = [s for s in sorted(dies.get(k, ())) if meta is None
                or meta.get(s, (None,))[0] != ()]
        if gone:
            lines.append(f"    del {', '.join(f'v{s}' for s in gone)}")
    fresh: set = set()          # slots holding new arrays a fused kernel wrote
    # Slots held as Python floats where the eager program has np.float64
    # scalars (same values): converted back (``_f64``) wherever the type
    # could matter (a value guard, a non-ufunc call, an output). A division
    # of two Python floats by zero raises instead of giving inf: the program
    # then returns None (the caller runs the interpreted path).
    pyf: set = set()
    scalar_ops = False
    ns["_f64"] = np.float64
    valued = {s for op in ops for s, want in op[5] if want.__class__ is ValueGuard}

    def typed(a, text):
        return f"_f64({text})" if a.__class__ is int and a in pyf else text
    for k, (impl, spec, params, slots, multi, guards) in enumerate(ops):
        call_args = [ref(a, f"c{k}_{i}") for i, a in enumerate(spec)]
        infix = _scalar_infix(impl, spec, params, multi, meta, pyf)
        if infix is None and type(impl) is not np.ufunc and impl is not as_result:
            call_args = [typed(a, t) for a, t in zip(spec, call_args)]
        if getattr(impl, "guarded", False):
            fresh.update(slots)
        elif impl is as_result and spec[0] in fresh and meta is not None \
                and meta.get(spec[0], ((),))[0] != ():
            # a kernel's output is already what as_result makes (a
            # contiguous array the caller owns): no call
            lines.append(f"    v{slots[0]} = {call_args[0]}")
            free(k)
            continue
        if infix is not None:
            scalar_ops = True
            expr = infix.format(*call_args)
            if any(a.__class__ is int and a in pyf for a in spec) and not any(
                    a.__class__ is int and a not in pyf or type(getattr(a, "value", None))
                    is np.float64 for a in spec):
                # every operand a Python float: so is the result
                if slots[0] in valued:
                    expr = f"_f64({expr})"
                else:
                    pyf.add(slots[0])
            lines.append(f"    v{slots[0]} = {expr}")
            for slot, expected in guards:
                guard(slot, expected)
            free(k)
            continue
        ns[f"f{k}"] = impl
        if params:
            ns[f"p{k}"] = params
            call_args.append(f"**p{k}")
        names = [f"v{s}" for s in slots]
        flagged = getattr(impl, "guarded", False)      # a fused kernel's guard flag
        if flagged:
            names.append("_ok")
        target = ", ".join(names) + ("," if (multi or flagged) and len(names) == 1 else "")
        call = f"f{k}({', '.join(call_args)})"
        if _as_python_float(impl, spec, params, slots, multi, meta) and slots[0] not in valued:
            call = f"float({call})"
            pyf.add(slots[0])
        lines.append(f"    {target} = {call}")
        if flagged:
            lines.append("    if not _ok: return None")
        for slot, expected in guards:
            guard(slot, expected)
        free(k)
    outs = [typed(o, ref(o, f"out{i}")) for i, o in enumerate(outputs)]
    lines.append(f"    return [{', '.join(outs)}]")
    if scalar_ops:          # (inputs may be Python floats too: 1.0 / x raises at 0)
        lines[1:] = (["    try:"] + ["    " + line for line in lines[1:]]
                     + ["    except ZeroDivisionError:", "        return None"])
    source = "\n".join(lines)
    exec(compile(source, f"<dualad.jit program {id(rep):x}>", "exec"), ns)
    run = ns["run"]
    run.source = source
    run.const_outputs = tuple(i for i, o in enumerate(outputs) if o.__class__ is not int)
    return run
