"""Fused forward-Laplacian updates for unary elementwise primitives.

For ``y = f(x)`` carrying first derivatives ``g`` (``(d,) + shape``) and a
Laplacian part ``l``, the forward-Laplacian interpreter needs
``g_y = f'(x) g`` and ``l_y = f'(x) l + f''(x) <g, g>``. Done with NumPy
that is about a dozen full-size temporaries per primitive (the partial, the
Dual evaluation that gives ``f''``, the products, the inner product); here
the value comes from NumPy (its SIMD ``tanh``/``exp`` beat Numba's scalar
libm calls, see bench/NOTES.md) and ONE Numba pass over ``(x, y, g, l)``
writes ``g_y`` and ``l_y``, reading each input once.

The table below gives ``f'`` and ``f''`` as expressions in ``x``, ``y`` and
``d1`` (= ``f'``); ``tests/test_kernels.py`` checks both against the
registry's partials (``f''`` by differentiating them), so they cannot drift.
Only primitives whose partials are finite wherever the input is
(``singular=False``) are listed: the interpreter multiplies without a guard
for those too, so the kernel and the NumPy rules agree bit for bit in
meaning (0 * inf questions never arise).
"""
from __future__ import annotations

import math  # noqa: F401  (used by the generated kernels)

import numpy as np

from dualad.core.registry import Primitive
from dualad.core.zero import Zero
from dualad.kernels.table import PARTIALS
from dualad.rules.ufuncs import arctan_p, cos_p, cosh_p, exp_p, sin_p, sinh_p, tanh_p

# f'' per primitive, in x, y = f(x) and d1 = f'(x) (f' itself is
# dualad.kernels.table.PARTIALS, shared with the eager kernels).
SECOND: dict[Primitive, str] = {
    tanh_p: "-2.0 * y * d1",
    sin_p: "-y",
    cos_p: "-y",
    exp_p: "y",
    sinh_p: "y",
    cosh_p: "y",
    arctan_p: "-2.0 * x * d1 * d1",
}

# Primitives whose VALUE the kernel computes too: NumPy's float64 tanh runs
# at ~7.6 ns per element on CPUs without AVX-512 (half of a W5 Laplacian's
# elementwise time); dualad.kernels.tanh_math's vectorises (AVX2, ~2.4 ns)
# and stays within 2 ulp of np.tanh.
_KERNEL_VALUE = {tanh_p: "math.tanh(x_i)"}
_VALUE_LOOP = """
        for j in range(m):
            x_i = x[start + j]
            y[start + j] = {value}
"""

# Blocked so that f' and f'' are computed once per element (sin needs a cos)
# yet the loops over the d coordinate planes stay unit-stride (vectorised).
# One kernel per (primitive, diag, has_l): no run-time branches in the loops.
_HEAD = """
def kernel(x, y, g, l, gy, ly):
    n = x.size
    nd = g.shape[0]
    B = 512
    d1s = np.empty(B, dtype=x.dtype)
    d2s = np.empty(B, dtype=x.dtype)
    for start in range(0, n, B):
        stop = min(start + B, n)
        m = stop - start{value}
        for j in range(m):
            x_i = x[start + j]
            y_i = y[start + j]
            d1 = {d1}
            d1s[j] = d1
            d2s[j] = {d2}
"""
_TRACE = """
        for j in range(m):
            ly[0, start + j] = {base}
        for k in range(nd):
            for j in range(m):
                gk = g[k, start + j]
                gy[k, start + j] = d1s[j] * gk
                ly[0, start + j] += d2s[j] * gk * gk
"""
_DIAG = """
        for k in range(nd):
            for j in range(m):
                gk = g[k, start + j]
                gy[k, start + j] = d1s[j] * gk
                ly[k, start + j] = {base}d2s[j] * gk * gk
"""
# For a few coordinates (d <= UNROLL: a PINN's 2-3, small Hessian diagonals)
# one pass per element with the d planes unrolled: LLVM then vectorises the
# whole element loop, tanh included (~1.2 ms vs ~3 ms blocked for W5's
# 4096 x 64 x 3 on AVX2). ``rows``: g is one (d, C) row shared by every row.
UNROLL = 8
_compiled: dict = {}


def _render_unrolled(prim: Primitive, diag: bool, has_l: bool, rows: bool, nd: int,
                     keep: tuple = (True, True), bias: bool = False) -> str:
    """``keep``: whether ``y`` (when the kernel computes it) and ``g_y`` are
    written (a recorded program drops dead outputs); ``bias``: the input is
    ``x + b`` with ``b`` one row (a layer's bias add folded in: the same
    IEEE addition NumPy does, so the same bits)."""
    import re
    d1, d2 = PARTIALS[prim], SECOND[prim]
    sub = lambda e: re.sub(r"\by\b", "y_i", re.sub(r"\bx\b", "x_i", e))
    value = _KERNEL_VALUE.get(prim)
    col = "j" if rows else "i"
    blocked = rows or bias
    pad = "            " if blocked else "        "
    lines = ["x_i = x[i] + b[j]" if bias else "x_i = x[i]",
             "y_i = y[i]" if value is None else f"y_i = {value}"]
    if value is not None and keep[0]:
        lines.append("y[i] = y_i")
    lines += [f"d1 = {sub(d1)}", f"d2 = {sub(d2)}"]
    lines += [f"g{k} = g[{k}, {col}]" for k in range(nd)]
    if keep[1]:
        lines += [f"gy[{k}, i] = d1 * g{k}" for k in range(nd)]
    if diag:
        lines += [(f"ly[{k}, i] = d1 * l[{k}, i] + " if has_l else f"ly[{k}, i] = ")
                  + f"d2 * (g{k} * g{k})" for k in range(nd)]
    else:
        total = " + ".join(f"g{k} * g{k}" for k in range(nd))
        lines.append(("ly[0, i] = d1 * l[0, i] + " if has_l else "ly[0, i] = ")
                     + f"d2 * ({total})")
    head = "def kernel(x, y, g, l, gy, ly, b):\n    n = x.size\n"
    if blocked:
        head += (f"    c = {'b.size' if bias else 'g.shape[1]'}\n    for r in range(n // c):\n"
                 "        for j in range(c):\n            i = r * c + j\n")
    else:
        head += "    for i in range(n):\n"
    return head + "\n".join(pad + ln for ln in lines) + "\n"


def _render(prim: Primitive, diag: bool, has_l: bool, rows: bool = False) -> str:
    import re
    d1, d2 = PARTIALS[prim], SECOND[prim]
    sub = lambda e: re.sub(r"\by\b", "y_i", re.sub(r"\bx\b", "x_i", e))
    if diag:
        body = _DIAG.format(base="d1s[j] * l[k, start + j] + " if has_l else "")
    else:
        body = _TRACE.format(base="d1s[j] * l[0, start + j]" if has_l else "0.0")
    value = _VALUE_LOOP.format(value=_KERNEL_VALUE[prim]) if prim in _KERNEL_VALUE else ""
    src = _HEAD.format(d1=sub(d1), d2=sub(d2), value=value.rstrip("\n")) + body
    if rows:
        # g is (d, C): one row shared by every row of x (flat, C-ordered):
        # blocks of one row each, so element j of a block is column j
        src = src.replace("B = 512", "B = g.shape[1]").replace("g[k, start + j]", "g[k, j]")
    return src


def build(prim: Primitive, diag: bool, has_l: bool, rows: bool = False, nd: int = 0,
          keep: tuple = (True, True), bias: bool = False):
    """Compile (once per process; from Numba's on-disk cache after the first
    process) the fused Laplacian update of ``prim`` (``rows``: for a
    tangent whose rows are one shared row, see :func:`laplacian_update`;
    ``nd``: the number of coordinates, unrolled when at most :data:`UNROLL`;
    ``keep`` and ``bias``: see :func:`_render_unrolled`, unrolled kernels
    only). Every kernel takes ``(x, y, g, l, gy, ly, b)``."""
    nd = nd if 0 < nd <= UNROLL else 0
    key = (prim, diag, has_l, rows, nd, keep, bias)
    kern = _compiled.get(key)
    if kern is None:
        from numba import njit

        from dualad.kernels.tanh_math import with_fast_tanh
        body = (_render_unrolled(prim, diag, has_l, rows, nd, keep, bias) if nd
                else _render(prim, diag, has_l, rows).replace("gy, ly):", "gy, ly, b):", 1))
        flags = f"{int(diag)}{int(has_l)}{int(rows)}{int(keep[0])}{int(keep[1])}{int(bias)}"
        src = with_fast_tanh("import math\nimport numpy as np\n" + body)
        fn, cacheable = _load(src, f"lap_{prim.name}_{flags}_{nd}")
        # "contract" (FMA) only: it lets the tanh value loop vectorise (0.9 vs
        # 1.2 ms per 2.6e5 elements) and never loosens NaN/inf/sign semantics
        kern = _compiled[key] = njit(nogil=True, error_model="numpy", cache=cacheable,
                                     fastmath={"contract"})(fn)
    return kern


def cache_root() -> str:
    """dualad's on-disk cache of generated kernel sources (Numba caches their
    compiled code beside them): ``DUALAD_CACHE_DIR``, else ``DUALAD_CACHE``
    (the older name used by ``da.jit``'s fused kernels), else
    ``$XDG_CACHE_HOME/dualad`` or ``~/.cache/dualad``. Read at each call."""
    import os
    return (os.environ.get("DUALAD_CACHE_DIR") or os.environ.get("DUALAD_CACHE")
            or os.path.join(os.environ.get("XDG_CACHE_HOME")
                            or os.path.join(os.path.expanduser("~"), ".cache"), "dualad"))


def _load(src: str, stem: str):
    """The generated ``kernel`` function and whether Numba may cache it.

    Why a file: Numba caches compiled code only for functions with a source
    file (a compile is ~1.5 s per kernel, the whole W5 pass ~17 ms). The
    file's name carries a hash of its text, so a changed template never meets
    a stale cache. Without a writable cache directory: ``exec``, no cache."""
    import hashlib
    import importlib.util
    import os
    import sys
    import tempfile
    digest = hashlib.sha1(src.encode()).hexdigest()[:16]
    path = os.path.join(cache_root(), "kernels", f"{stem}_{digest}.py")
    try:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(src)
            os.replace(tmp, path)          # atomic: concurrent processes agree
        name = f"dualad_kernel_{stem}_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        # Numba's cache rebuilds the kernel's globals by importing this name
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module.kernel, True
    except OSError:
        namespace: dict = {}
        exec(src, namespace)               # generated from the table only
        return namespace["kernel"], False


def applies(prim: Primitive, x, g, lap, diag: bool) -> bool:
    """Plain C-contiguous float arrays of one dtype, ``g`` of ``(d,) + x.shape``
    and ``lap`` Zero or of its expected shape: anything else takes the rules."""
    if prim not in SECOND or type(x) is not np.ndarray or type(g) is not np.ndarray:
        return False
    if x.dtype.kind != "f" or g.dtype != x.dtype or g.shape[1:] != x.shape or g.ndim < 1:
        return False
    if lap is Zero:
        return True
    want = g.shape if diag else x.shape
    return type(lap) is np.ndarray and lap.dtype == x.dtype and lap.shape == want


def laplacian_update(prim: Primitive, x: np.ndarray, g: np.ndarray, lap, diag: bool,
                     keep: tuple = (True, True), bias=None):
    """``(y, g_y, lap_y)`` by one fused pass (``y`` from ``prim.impl`` first,
    unless the kernel computes the value too). ``keep``: whether ``y`` and
    ``g_y`` are needed (``None`` comes back for one that is not);
    ``bias``: a row added to ``x`` first (:func:`can_fold`)."""
    from dualad.kernels.pool import empty
    d = g.shape[0]
    n = x.size
    unrolled = 0 < d <= UNROLL
    keep = keep if unrolled else (True, True)
    if prim in _KERNEL_VALUE:
        y = empty(x.shape, x.dtype) if keep[0] else np.empty(0, x.dtype)
    else:
        y = prim.impl(x if bias is None else x + bias)
    xf = np.ascontiguousarray(x).reshape(n)
    yf = np.ascontiguousarray(y).reshape(y.size)
    shared = _shared_row(g)
    gf = np.ascontiguousarray(g).reshape(d, n) if shared is None else shared
    rows = d if diag else 1
    has_l = lap is not Zero
    lf = np.ascontiguousarray(lap).reshape(rows, n) if has_l else np.empty((rows, 0), x.dtype)
    gy = empty((d, n), x.dtype) if keep[1] else np.empty((d, 0), x.dtype)
    ly = empty((rows, n), x.dtype)
    fold = bias is not None and prim in _KERNEL_VALUE and unrolled
    b = np.ascontiguousarray(bias, dtype=x.dtype) if fold else np.empty(0, x.dtype)
    if bias is not None and not fold:
        xf = xf + np.broadcast_to(bias, x.shape).reshape(n)
    build(prim, diag, has_l, shared is not None, d, keep, fold)(xf, yf, gf, lf, gy, ly, b)
    return (y if keep[0] else None, gy.reshape(g.shape) if keep[1] else None,
            ly.reshape(g.shape if diag else x.shape))


def can_fold(x_meta: tuple, bias_meta: tuple) -> bool:
    """Whether an ``add`` of a bias (shape and dtype ``bias_meta``) to an
    input (``x_meta``) may be folded into :func:`laplacian_update`: a row
    as long as the input's last axis, of its dtype (so ``x + b`` has the
    input's shape and dtype: the same addition, the same bits)."""
    (xs, xd), (bs, bd) = x_meta, bias_meta
    return (len(bs) == 1 and len(xs) >= 2 and bs[0] == xs[-1] and xd is not None
            and bd == xd and xd.kind == "f")


class LapUpdate:
    """:func:`laplacian_update` of one primitive as a plain call
    ``(x, g, lap) -> (y, g_y, lap_y)``: what ``da.jit`` records for a fused
    forward-Laplacian update (one operation of the program)."""

    __slots__ = ("prim", "diag", "keep", "biased")

    def __init__(self, prim: Primitive, diag: bool, keep: tuple = (True, True),
                 biased: bool = False):
        self.prim, self.diag, self.keep, self.biased = prim, diag, keep, biased

    def __call__(self, x, g, lap, bias=None):
        return laplacian_update(self.prim, x, g, lap, self.diag, self.keep, bias)

    def prune(self, live: tuple) -> LapUpdate:
        """The same update writing only the outputs in ``live`` (``lap_y``
        always): a recorded program drops ``y`` or ``g_y`` when nothing
        reads them (the last layer's, for a Laplacian)."""
        return LapUpdate(self.prim, self.diag, (live[0], live[1]), self.biased)

    def with_bias(self) -> LapUpdate:
        """The same update taking a fourth argument, a row added to ``x``
        first (a layer's bias add folded in; :func:`can_fold` says when)."""
        return LapUpdate(self.prim, self.diag, self.keep, True)

    def __repr__(self) -> str:
        return f"LapUpdate({self.prim.name}, diag={self.diag}, keep={self.keep})"


def _shared_row(g: np.ndarray):
    """``(d, C)``: the one row of a ``g`` that is a stride-0 broadcast over all
    axes but the coordinate axis and the last (the first layer's tangent
    under batched seeds: the weights themselves), else ``None`` (read ``g``
    whole). Rows under 16 wide: blocks too short to pay, read ``g`` whole."""
    if g.ndim < 3 or g.shape[-1] < 16 or any(s != 0 for s in g.strides[1:-1]):
        return None
    return np.ascontiguousarray(g[(slice(None),) + (0,) * (g.ndim - 2)])
