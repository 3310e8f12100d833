"""Random NumPy programs for the differential fuzzer (tests/test_fuzz.py).

A :class:`Program` is straight-line NumPy source over one input ``x``: a pool
of named values, each step applying one op (elementwise incl. piecewise ones,
broadcasting binaries, reductions, indexing, shape ops, contractions, linalg)
to values whose shapes it tracks statically. Every op keeps to its smooth
domain by construction (``log(1.5 + sin(v))``, matrices ``3 I + 0.3 tanh(A)``,
distinct eigenvalues, ...); ops with kinks or jumps (abs, maximum, clip,
where, mod, max, std, norm) also record a *margin* expression: the distance of
their arguments to the kink, evaluated on the sample point, so examples that
sit near a kink can be rejected (a finite difference straddling a kink is not
a mismatch).

>>> import numpy as np
>>> p = Program((3,), ["v1 = np.sin(x)"], ["np.abs(x)"], "v1")
>>> print(p.source())
import numpy as np
<BLANKLINE>
def f(x):
    v1 = np.sin(x)
    return v1
>>> p.margin(np.array([0.5, -1.0, 2.0]))
0.5
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

# Input shapes: 0-d, size-1, empty, vectors, matrices.
SHAPES = [(), (1,), (0,), (2,), (3,), (4,), (1, 3), (2, 2), (3, 3), (2, 3), (0, 2), (2, 1, 2)]

UNARY = {   # smooth on the whole line, bounded growth
    "sin": "np.sin({a})", "cos": "np.cos({a})", "tanh": "np.tanh({a})",
    "arctan": "np.arctan({a})", "exp": "np.exp(0.5 * np.tanh({a}))",
    "log": "np.log(1.5 + np.sin({a}))", "sqrt": "np.sqrt(1.0 + {a} * {a})",
    "square": "0.5 * {a} ** 2", "cube": "0.2 * {a} ** 3", "pow0": "{a} ** 0.0 + {a}",
    "recip": "1.0 / (2.0 + np.cos({a}))", "log1p": "np.log1p({a} * {a})",
    "sinh": "np.sinh(0.5 * np.tanh({a}))", "expm1": "np.expm1(np.sin({a}))",
    "neg": "-{a}", "scale": "2.5 * {a} - 0.3",
}
PIECEWISE = {   # (expression, margin: distance of the argument to the kink)
    "abs": ("np.abs({a})", "np.abs({a})"),
    "maximum_c": ("np.maximum({a}, 0.1)", "np.abs({a} - 0.1)"),
    "clip": ("np.clip({a}, -0.5, 0.5)", "np.minimum(np.abs({a} - 0.5), np.abs({a} + 0.5))"),
    "where": ("np.where({a} > 0.2, np.sin({a}), {a} ** 2)", "np.abs({a} - 0.2)"),
    "mod": ("np.mod({a}, 0.7)", "_mod_margin({a}, 0.7)"),
    "fmod": ("np.fmod({a}, 0.6)", "_mod_margin({a}, 0.6)"),
    "rmod": ("2.5 % (1.0 + {a} ** 2)", "_mod_margin(2.5, 1.0 + {a} ** 2)"),
    "floordiv": ("({a} // 0.5) * 0.1 + {a}", "_mod_margin({a}, 0.5)"),
}
BINARY = {
    "add": ("{a} + {b}", None), "sub": ("{a} - {b}", None), "mul": ("{a} * {b}", None),
    "div": ("{a} / (1.5 + {b} ** 2)", None),
    "arctan2": ("np.arctan2({a}, 2.0 + {b} ** 2)", None),
    "hypot": ("np.hypot({a}, 1.0 + {b} ** 2)", None),
    "pow": ("(1.5 + np.sin({a})) ** np.cos({b})", None),
    "maximum": ("np.maximum({a}, {b})", "np.abs({a} - {b})"),
    "minimum": ("np.minimum({a}, {b})", "np.abs({a} - {b})"),
    "where2": ("np.where({a} > {b}, {a}, 2.0 * {b})", "np.abs({a} - {b})"),
    "mod2": ("np.mod({a}, 1.0 + {b} ** 2)", "_mod_margin({a}, 1.0 + {b} ** 2)"),
    "fmod2": ("np.fmod({a}, 1.0 + {b} ** 2)", "_mod_margin({a}, 1.0 + {b} ** 2)"),
}


def _mod_margin(x, y):
    q = np.asarray(x) / np.asarray(y)
    return np.abs(q - np.round(q)) * np.abs(y)


def _top2_gap(a, axis):
    s = np.sort(np.asarray(a), axis=axis)
    if s.shape[axis] < 2 or s.size == 0:
        return np.inf
    return np.min(np.take(s, -1, axis) - np.take(s, -2, axis))


def _low2_gap(a, axis):
    return _top2_gap(-np.asarray(a), axis)


MARGIN_ENV = {"np": np, "_mod_margin": _mod_margin, "_top2_gap": _top2_gap,
              "_low2_gap": _low2_gap}


@dataclass
class Program:
    """``lines`` assign ``v1, v2, ...`` from ``x``; ``out`` names the result."""

    shape: tuple
    lines: list
    margins: list = field(default_factory=list)
    out: str = "x"

    def source(self, name: str = "f") -> str:
        body = "".join(f"    {line}\n" for line in self.lines)
        return f"import numpy as np\n\ndef {name}(x):\n{body}    return {self.out}"

    def function(self):
        env = {"np": np}
        exec(self.source(), env)          # noqa: S102 - generated test programs
        return env["f"]

    def margin(self, x) -> float:
        """The smallest distance to a kink over the recorded margins."""
        env = dict(MARGIN_ENV)
        env["x"] = x
        for line in self.lines:
            exec(line, env)               # noqa: S102
        best = np.inf
        for m in self.margins:
            v = np.asarray(eval(m, env))  # noqa: S307
            if v.size:
                best = min(best, float(np.min(v)))
        return best

    def __repr__(self) -> str:
        return f"Program(shape={self.shape!r}):\n{self.source()}"


def _bshape(a: tuple, b: tuple):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def _size(s: tuple) -> int:
    return int(np.prod(s, dtype=np.int64))


@st.composite
def programs(draw, max_steps: int = 6) -> Program:
    shape = draw(st.sampled_from(SHAPES))
    pool = [("x", shape)]
    lines, margins = [], []
    n_steps = draw(st.integers(1, max_steps))
    for k in range(1, n_steps + 1):
        name = f"v{k}"
        a, sa = draw(st.sampled_from(pool))
        step = _step(draw, a, sa, pool)
        if step is None:
            a, sa = pool[-1]
            step = (UNARY["sin"].format(a=a), sa, None)
        expr, s, margin = step
        lines.append(f"{name} = {expr}")
        if margin:
            margins.append(margin)
        pool.append((name, s))
    out = draw(st.sampled_from([pool[-1]] * 3 + pool[1:]))[0]
    return Program(shape, lines, margins, out)


def _step(draw, a, sa, pool):
    family = draw(st.sampled_from(
        ["unary"] * 4 + ["piecewise"] * 2 + ["binary"] * 3 + ["reduce"] * 2
        + ["index", "shape", "contract", "linalg", "linalg"]))
    return _FAMILIES[family](draw, a, sa, pool)


def _unary(draw, a, sa, pool):
    return UNARY[draw(st.sampled_from(sorted(UNARY)))].format(a=a), sa, None


def _piecewise(draw, a, sa, pool):
    expr, margin = PIECEWISE[draw(st.sampled_from(sorted(PIECEWISE)))]
    return expr.format(a=a), sa, margin.format(a=a)


def _binary(draw, a, sa, pool):
    others = [(b, sb) for b, sb in pool if _bshape(sa, sb) is not None]
    b, sb = draw(st.sampled_from(others))
    expr, margin = BINARY[draw(st.sampled_from(sorted(BINARY)))]
    return (expr.format(a=a, b=b), _bshape(sa, sb),
            margin.format(a=a, b=b) if margin else None)


def _reduce(draw, a, sa, pool):
    nd = len(sa)
    axis = draw(st.sampled_from([None] + list(range(-nd, 0)) if nd else [None]))
    out = () if axis is None else sa[:nd + axis] + sa[nd + axis + 1:]
    count = _size(sa) if axis is None else sa[axis]
    ops = ["sum", "prod", "var", "cumsum"]
    if count >= 1:
        ops += ["mean", "max", "min", "std", "logsumexp"]
    if axis is None and _size(sa) >= 1:
        ops += ["norm"]
    op = draw(st.sampled_from(ops))
    ax = "" if axis is None else f", axis={axis}"
    if op == "cumsum":
        return f"np.cumsum({a}{ax})", (_size(sa),) if axis is None else sa, None
    if op == "prod":
        return f"np.prod(1.0 + 0.5 * np.sin({a}){ax})", out, None
    if op == "logsumexp":
        return f"np.log(np.sum(np.exp(np.sin({a})){ax}))", out, None
    if op in ("max", "min"):
        gap = "_top2_gap" if op == "max" else "_low2_gap"
        return f"np.{op}({a}{ax})", out, f"{gap}({a}, {-1 if axis is None else axis})" \
            if axis is not None else f"{gap}(np.ravel({a}), -1)"
    if op == "std":
        # std of equal values is a kink (|t| std(d)); of one value the constant 0
        margin = f"np.std({a}{ax})" if count >= 2 else None
        return f"np.std({a}{ax})", out, margin
    if op == "norm":
        return f"np.linalg.norm({a})", (), f"np.linalg.norm({a})"
    return f"np.{op}({a}{ax})", out, None


def _index(draw, a, sa, pool):
    if not sa or sa[0] == 0:
        return None
    n = sa[0]
    choices = [(f"{a}[0]", sa[1:]), (f"{a}[::-1]", sa), (f"{a}[1:]", (n - 1,) + sa[1:]),
               (f"{a}[np.array([0, {n - 1}, 0])]", (3,) + sa[1:]),
               (f"{a}[-1:]", (1,) + sa[1:])]
    if len(sa) >= 2 and sa[-1] >= 1:
        choices.append((f"{a}[..., 0]", sa[:-1]))
        choices.append((f"{a}[:, None]", (n, 1) + sa[1:]))
    expr, s = draw(st.sampled_from(choices))
    return expr, s, None


def _shape(draw, a, sa, pool):
    choices = [(f"np.reshape({a}, -1)", (_size(sa),)), (f"np.expand_dims({a}, 0)", (1,) + sa),
               (f"np.concatenate([np.atleast_1d({a}), np.atleast_1d(np.sin({a}))])",
                (2 * sa[0],) + sa[1:] if sa else (2,)),
               (f"np.stack([{a}, np.cos({a})])", (2,) + sa),
               (f"np.broadcast_to({a}, (2,) + np.shape({a}))", (2,) + sa),
               (f"np.tile({a}, 2)", sa[:-1] + (2 * sa[-1],) if sa else (2,))]
    if len(sa) == 2:
        choices += [(f"{a}.T", sa[::-1]), (f"np.swapaxes({a}, 0, 1)", sa[::-1])]
    if 1 in sa:
        choices.append((f"np.squeeze({a})", tuple(d for d in sa if d != 1)))
    if _size(sa) % 2 == 0 and _size(sa) > 0:
        choices.append((f"np.reshape({a}, (2, -1))", (2, _size(sa) // 2)))
    expr, s = draw(st.sampled_from(choices))
    return expr, s, None


def _contract(draw, a, sa, pool):
    choices = []
    for b, sb in pool:
        if len(sa) == 2 and len(sb) >= 1 and sb[0] == sa[1] and len(sb) <= 2:
            choices.append((f"{a} @ {b}", sa[:1] + sb[1:]))
            if len(sb) == 1:
                choices.append((f"np.einsum('ij,j->i', {a}, {b})", sa[:1]))
        if len(sa) == 1 and sb == sa:
            choices.append((f"np.dot({a}, {b})", ()))
            choices.append((f"np.einsum('i,i->', {a}, {b})", ()))
        if len(sa) == 1 and len(sb) == 1 and sa[0] <= 4 and sb[0] <= 4:
            choices.append((f"np.outer({a}, np.cos({b}))", (sa[0], sb[0])))
    if len(sa) == 2:
        choices.append((f"{a} @ {a}.T", (sa[0], sa[0])))
        choices.append((f"np.einsum('ij->j', {a})", sa[1:]))
    if not choices:
        return None
    expr, s = draw(st.sampled_from(choices))
    return expr, s, None


def _linalg(draw, a, sa, pool):
    """Linalg on well-conditioned matrices built from a square value."""
    squares = [(b, sb) for b, sb in pool if len(sb) == 2 and sb[0] == sb[1] and 1 <= sb[0] <= 4]
    vectors = [(b, sb) for b, sb in pool if len(sb) == 1 and 1 <= sb[0] <= 4]
    if squares:
        m, sm = draw(st.sampled_from(squares))
    elif vectors:
        v, sv = draw(st.sampled_from(vectors))
        m, sm = f"np.outer({v}, np.sin({v}))", (sv[0], sv[0])
    else:
        return None
    n = sm[0]
    well = f"(3.0 * np.eye({n}) + 0.3 * np.tanh({m}))"
    spread = f"(np.diag(1.5 * np.arange(1.0, {n + 1})) + 0.1 * np.tanh({m}))"  # gaps >= 0.7
    rhs = [b for b, sb in pool if sb in ((n,), (n, 1), (n, 2))]
    choices = [(f"np.linalg.det({well})", ()), (f"np.linalg.inv({well})", (n, n)),
               (f"np.linalg.slogdet({well})[1]", ()),
               (f"np.linalg.eigvalsh({spread})", (n,)),
               (f"np.linalg.eigvalsh({spread}, UPLO='U')", (n,)),
               (f"np.linalg.eigh({spread})[1] ** 2", (n, n)),
               (f"np.linalg.cholesky({well} @ {well}.T)", (n, n)),
               (f"np.linalg.det(np.stack([{well}, {well}.T]))", (2,))]
    for b in rhs:
        sb = dict(pool)[b]
        choices.append((f"np.linalg.solve({well}, {b})", sb))
    expr, s = draw(st.sampled_from(choices))
    return expr, s, None


_FAMILIES = {"unary": _unary, "piecewise": _piecewise, "binary": _binary, "reduce": _reduce,
             "index": _index, "shape": _shape, "contract": _contract, "linalg": _linalg}
