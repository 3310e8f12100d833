"""Contractions: two primitives, ``matmul`` and ``einsum``; dot, vdot, inner,
outer, tensordot, kron and cross are compositions of them and of
reshape/multiply, so their derivatives (to any order) come for free.

Both primitives are multilinear: the JVP sums the primitive with one operand
replaced by its tangent; the VJP contracts the cotangent with the other
operands. Tangents and cotangents carry ``lead`` batch axes in front.

Example::

    >>> import numpy as np, dualad as da
    >>> a = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> da.grad(lambda x: np.einsum("ij,j->", a, x))(np.array([1.0, 1.0]))
    array([4., 6.])
"""
from __future__ import annotations

import string
from collections import Counter

import numpy as np

from dualad.core.backend import dtype_of, namespace_of, result_float_dtype
from dualad.core.dispatch import implements
from dualad.core.levels import is_traced
from dualad.core.registry import (
    align,
    defprimitive,
    lead_of,
    ndim_of,
    shape_of,
    unbroadcast,
)
from dualad.core.zero import Zero, add_any


def _operands(*args):
    """Traced values as they are; the rest as arrays. Python scalars take the
    dtype of the traced operands, so float32 stays float32."""
    traced = [dtype_of(a) for a in args if is_traced(a)]
    dtype = np.result_type(*traced) if traced else np.float64
    out = []
    for a in args:
        if is_traced(a) or hasattr(a, "shape"):
            out.append(a)
        elif isinstance(a, (float, int)):
            out.append(np.asarray(a, dtype=dtype))
        else:
            out.append(np.asarray(a))
    return out


def _dtype_of(*args):
    return np.result_type(*[result_float_dtype(a) for a in args])


# ============================================================================
# matmul: operands of rank >= 2 only (the handler promotes 1-D operands)
# ============================================================================
# Why the promotion happens outside the primitive: a 1-D operand's tangent
# with a lead axis would look like a matrix to np.matmul.
def _swap(x):
    return np.swapaxes(x, -1, -2)


def _matmul_jvp(primals, tangents, out):
    (a, b), (ta, tb) = primals, tangents
    nd = ndim_of(out)
    res = Zero
    if ta is not Zero:
        # Unit axes after the lead keep the lead out of matmul's batch broadcasting.
        res = matmul_p(align(ta, ndim_of(a), nd), b)
    if tb is not Zero:
        res = add_any(res, matmul_p(a, align(tb, ndim_of(b), nd)))
    return res


def _matmul_vjp(ct, primals, out, needs):
    a, b = primals
    lead = lead_of(ct, out)
    ca = unbroadcast(matmul_p(ct, _swap(b)), shape_of(a), lead) if needs[0] else Zero
    cb = unbroadcast(matmul_p(_swap(a), ct), shape_of(b), lead) if needs[1] else Zero
    return ca, cb


matmul_p = defprimitive("matmul", lambda a, b: namespace_of(a, b).matmul(a, b),
                        jvp=_matmul_jvp, vjp=_matmul_vjp, multilinear=True)


@implements(np.matmul)
def matmul(a, b, **kwargs):
    """``a @ b`` with NumPy's rules for 1-D operands and broadcast batch axes."""
    if kwargs.get("axes") is not None or kwargs.get("axis") is not None:
        raise NotImplementedError("dualad: np.matmul(..., axes=...) on traced values")
    a, b = _operands(a, b)
    na, nb = ndim_of(a), ndim_of(b)
    if na == 0 or nb == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    if na == 1:
        a = np.reshape(a, (1,) + shape_of(a))
    if nb == 1:
        b = np.reshape(b, shape_of(b) + (1,))
    out = matmul_p(a, b)
    if na == 1 or nb == 1:
        s = shape_of(out)
        out = np.reshape(out, s[:-2] + (() if na == 1 else s[-2:-1]) + (() if nb == 1 else s[-1:]))
    return out


# ============================================================================
# einsum: subscripts normalised to explicit letters, no ellipsis
# ============================================================================
_LETTERS = string.ascii_letters


def _fresh(used, n: int) -> list:
    free = [c for c in _LETTERS if c not in used]
    if len(free) < n:
        raise ValueError("einsum: too many distinct indices for the 52 subscript letters")
    return free[:n]


def _from_sublists(args):
    """The operand-list form ``einsum(a, [0, 1], b, [1, 2], [0, 2])`` as a string."""
    def sub(lst):
        return "".join("..." if s is Ellipsis else _LETTERS[int(s)] for s in lst)
    ops, subs = list(args[0:-1:2]), [sub(s) for s in args[1::2]]
    if len(args) % 2:
        return ",".join(subs) + "->" + sub(args[-1]), ops
    return ",".join(subs), ops


def parse_subscripts(subscripts: str, shapes: list) -> tuple[list, str]:
    """Explicit form of einsum ``subscripts`` for operands of ``shapes``:
    ``(input subscripts, output subscript)``, the ellipsis replaced by fresh
    letters (right-aligned, like broadcasting) and an implicit output made explicit.

    >>> parse_subscripts("...ij,jk", [(5, 2, 3), (3, 4)])
    (['aij', 'jk'], 'aik')
    """
    s = subscripts.replace(" ", "")
    lhs, rhs = s.split("->") if "->" in s else (s, None)
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} subscripts for {len(shapes)} operands")
    widths = [len(sh) - (len(sub) - 3) if "..." in sub else 0
              for sub, sh in zip(ins, shapes, strict=True)]
    ell = "".join(_fresh(set(s), max(widths, default=0)))
    full = [sub.replace("...", ell[len(ell) - w:] if w else "")
            for sub, w in zip(ins, widths, strict=True)]
    for sub, sh in zip(full, shapes, strict=True):
        if len(sub) != len(sh) or not all(c in _LETTERS for c in sub):
            raise ValueError(f"einsum: subscripts '{sub}' do not match an operand of shape {sh}")
    if rhs is None:
        # NumPy's implicit output: the ellipsis, then letters seen once, sorted.
        counts = Counter("".join(ins).replace(".", ""))
        rhs = ell + "".join(sorted(c for c, n in counts.items() if n == 1))
    else:
        rhs = rhs.replace("...", ell)
    return full, rhs


def _einsum_impl(*operands, subscripts):
    return namespace_of(*operands).einsum(subscripts, *operands, optimize=len(operands) > 2)


def _split(subscripts):
    lhs, rhs = subscripts.split("->")
    return lhs.split(","), rhs


def _einsum_jvp(primals, tangents, out, subscripts):
    ins, rhs = _split(subscripts)
    total = Zero
    for k, t in enumerate(tangents):
        if t is Zero:
            continue
        # The tangent's lead axes ride along as an ellipsis into the output.
        subs = ["..." + s if i == k else s for i, s in enumerate(ins)]
        ops = [t if i == k else p for i, p in enumerate(primals)]
        total = add_any(total, np.einsum(",".join(subs) + "->..." + rhs, *ops,
                                         optimize=len(ops) > 2))
    return total


def _einsum_vjp(ct, primals, out, needs, subscripts):
    ins, rhs = _split(subscripts)
    lead = lead_of(ct, out)
    return tuple(_einsum_ct(ct, lead, primals, ins, rhs, k) if need else Zero
                 for k, need in enumerate(needs))


def _einsum_ct(ct, lead, primals, ins, rhs, k):
    """Cotangent of operand ``k``: the output cotangent contracted with the
    other operands, then broadcast over indices only ``k`` has, and embedded
    on the diagonal for indices ``k`` repeats (``'ii->i'``)."""
    sub = ins[k]
    sizes = dict(zip(sub, shape_of(primals[k]), strict=True))
    uniq = "".join(dict.fromkeys(sub))
    others = [s for i, s in enumerate(ins) if i != k]
    present = set(rhs).union(*others)
    keep = "".join(c for c in uniq if c in present)
    ops = [ct] + [p for i, p in enumerate(primals) if i != k]
    r = np.einsum(",".join(["..." + rhs] + others) + "->..." + keep, *ops,
                  optimize=len(ops) > 2)
    # Size-1 axes of operand k were broadcast against the others: sum them back.
    rs = shape_of(r)
    axes = tuple(lead + i for i, c in enumerate(keep) if sizes[c] == 1 and rs[lead + i] != 1)
    if axes:
        r = np.sum(r, axis=axes, keepdims=True)
    if len(keep) < len(uniq):
        # Indices of k alone: the output does not depend on them, so broadcast.
        r = np.reshape(r, rs[:lead] + tuple(sizes[c] if c in keep else 1 for c in uniq))
        r = np.broadcast_to(r, rs[:lead] + tuple(sizes[c] for c in uniq))
    if len(uniq) < len(sub):
        r = _diagonal_embed(r, uniq, sub, sizes, set("".join(ins) + rhs))
    return r


def _diagonal_embed(r, uniq, sub, sizes, used):
    """``r`` (lead + one axis per distinct letter of ``sub``) placed on the
    diagonals of ``sub``'s repeated letters, zeros elsewhere: an einsum with
    identity matrices, so it stays linear and differentiable."""
    xp = namespace_of(r)
    dtype = result_float_dtype(r)
    fresh = iter(_fresh(used, len(sub)))
    target, eyes, seen = [], [], set()
    for c in sub:
        if c in seen:
            f = next(fresh)
            target.append(f)
            eyes.append((c + f, xp.eye(sizes[c], dtype=dtype)))
        else:
            seen.add(c)
            target.append(c)
    spec = ",".join(["..." + uniq] + [e for e, _ in eyes]) + "->..." + "".join(target)
    return np.einsum(spec, r, *[m for _, m in eyes])


einsum_p = defprimitive("einsum", _einsum_impl, jvp=_einsum_jvp, vjp=_einsum_vjp,
                        multilinear=True)


@implements(np.einsum)
def einsum(*args, out=None, optimize=False, dtype=None, order="K", casting="safe"):
    """np.einsum: explicit/implicit output, ellipsis, repeated indices, any
    number of operands, and the operand-list form."""
    if isinstance(args[0], str):
        subscripts, ops = args[0], list(args[1:])
    else:
        subscripts, ops = _from_sublists(args)
    ops = _operands(*ops)
    ins, rhs = parse_subscripts(subscripts, [shape_of(o) for o in ops])
    return einsum_p(*ops, subscripts=",".join(ins) + "->" + rhs)


# ============================================================================
# compositions: dot, vdot, inner, outer, tensordot, kron
# ============================================================================
@implements(np.dot)
def dot(a, b, out=None):
    """np.dot: multiply for scalars, matmul up to a 2-D ``b``, else tensordot."""
    a, b = _operands(a, b)
    na, nb = ndim_of(a), ndim_of(b)
    if na == 0 or nb == 0:
        return np.multiply(a, b)
    if nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([na - 1], [nb - 2]))


@implements(np.vdot)
def vdot(a, b):
    a, b = _operands(a, b)
    return matmul(np.ravel(a), np.ravel(b))


@implements(np.inner)
def inner(a, b):
    """np.inner: contract the last axes; scalars multiply."""
    a, b = _operands(a, b)
    na, nb = ndim_of(a), ndim_of(b)
    if na == 0 or nb == 0:
        return np.multiply(a, b)
    la, lb, z = _LETTERS[:na - 1], _LETTERS[na - 1:na + nb - 2], _LETTERS[na + nb - 2]
    return einsum(f"{la}{z},{lb}{z}->{la}{lb}", a, b)


@implements(np.outer)
def outer(a, b, out=None):
    a, b = _operands(a, b)
    return np.multiply(np.reshape(np.ravel(a), (-1, 1)), np.ravel(b))


@implements(np.tensordot)
def tensordot(a, b, axes=2):
    """np.tensordot with ``axes`` an int or a pair of axis lists, as an einsum."""
    a, b = _operands(a, b)
    na, nb = ndim_of(a), ndim_of(b)
    if isinstance(axes, (int, np.integer)):
        ax_a, ax_b = list(range(na - int(axes), na)), list(range(int(axes)))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    ax_a = [int(x) % max(na, 1) for x in ax_a]
    ax_b = [int(x) % max(nb, 1) for x in ax_b]
    if len(ax_a) != len(ax_b):
        raise ValueError("shape-mismatch for sum")
    sa = _LETTERS[:na]
    free_b = iter(_LETTERS[na:])
    sb = "".join(sa[ax_a[ax_b.index(i)]] if i in ax_b else next(free_b) for i in range(nb))
    rhs = "".join(c for i, c in enumerate(sa) if i not in ax_a) + "".join(
        c for i, c in enumerate(sb) if i not in ax_b)
    return einsum(f"{sa},{sb}->{rhs}", a, b)


@implements(np.kron)
def kron(a, b):
    """np.kron as an outer product of interleaved axes, then a reshape."""
    a, b = _operands(a, b)
    na, nb = ndim_of(a), ndim_of(b)
    nd = max(na, nb)
    if nd == 0:
        return np.multiply(a, b)
    sa = (1,) * (nd - na) + shape_of(a)
    sb = (1,) * (nd - nb) + shape_of(b)
    a2 = np.reshape(a, tuple(x for n in sa for x in (n, 1)))
    b2 = np.reshape(b, tuple(x for n in sb for x in (1, n)))
    return np.reshape(np.multiply(a2, b2), tuple(p * q for p, q in zip(sa, sb, strict=True)))


# ============================================================================
# cross: contraction with the Levi-Civita symbol
# ============================================================================
def _levi_civita(dtype):
    eps = np.zeros((3, 3, 3), dtype=dtype)
    for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        eps[i, j, k], eps[i, k, j] = 1, -1
    return eps


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """np.cross of 2- and 3-vectors along ``axisa``/``axisb`` (or ``axis``),
    broadcasting the other axes; 2-vectors are embedded with z = 0."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = _operands(a, b)
    a, b = np.moveaxis(a, axisa, -1), np.moveaxis(b, axisb, -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n"
                         "(dimension must be 2 or 3)")
    xp = namespace_of(a, b)
    dtype = _dtype_of(a, b)
    eps = xp.asarray(_levi_civita(dtype))
    if na == 2 and nb == 2:
        # The z component of the 3-D cross product: a scalar per pair.
        return einsum("...j,...k,jk->...", a, b, eps[2, :2, :2])
    embed = xp.eye(3, 2, dtype=dtype)
    if na == 2:
        a = einsum("...j,ij->...i", a, embed)
    if nb == 2:
        b = einsum("...j,ij->...i", b, embed)
    c = einsum("...j,...k,ijk->...i", a, b, eps)
    return np.moveaxis(c, -1, axisc)
