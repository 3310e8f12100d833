"""One declaration site per primitive: the slot matrix and the tables keyed by
primitive.

For every built-in primitive the matrix shows which rules it declares and
which each interpreter uses (its own rule, or what it derives from the
declared structure), and the structure flags. It is checked against
:data:`EXPECTED`, so adding or removing a rule shows up as a diff here: edit
the row on purpose. ``pytest -s tests/test_slot_matrix.py`` prints it.

Columns: ``rules`` the rules declared in ``defprimitive`` (``partials``,
``transpose``, or ``jvp+vjp``); ``taylor`` ``rule`` (forward/taylor.py's
table), ``declared`` (given to defprimitive), or derived: ``linear``,
``multilinear``, ``generic`` (from the partials), ``jvp`` (nested jvp);
``sparsity`` ``rule`` (mixed/sparsity.py's table) or derived ``linear``,
``elementwise``, ``conservative``; ``structured`` ``rule``, ``elementwise``
or ``dense`` (densify, then the jvp); ``kernel`` ``fused`` when kernels/
has a fused value-and-partial kernel; ``flags`` L linear, E elementwise,
M multilinear, O partials read ``out``, S singular (s: finite where the
output is), 2/3 the number of outputs.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import dualad
from dualad.core.registry import Primitive, bind, registry

EXPECTED = """
name          rules      taylor       sparsity      structured   kernel  flags
absolute      partials   generic      elementwise   elementwise  -       E
add           partials   rule         elementwise   elementwise  -       E
arccos        partials   generic      elementwise   elementwise  -       ES
arccosh       partials   generic      elementwise   elementwise  -       ES
arcsin        partials   generic      elementwise   elementwise  -       ES
arcsinh       partials   generic      elementwise   elementwise  -       E
arctan        partials   generic      elementwise   elementwise  -       E
arctan2       partials   generic      elementwise   elementwise  -       ES
arctanh       partials   generic      elementwise   elementwise  -       ES
astype        transpose  linear       rule          rule         -       L
broadcast_to  transpose  linear       rule          rule         -       L
cbrt          partials   rule         elementwise   elementwise  -       EOS
cholesky      jvp+vjp    jvp          conservative  dense        -       -
concatenate   jvp+vjp    rule         rule          rule         -       -
conj          transpose  linear       linear        dense        -       L
cos           partials   rule         elementwise   elementwise  fused   E
cosh          partials   rule         elementwise   elementwise  -       E
cumsum        transpose  linear       rule          dense        -       L
det           jvp+vjp    jvp          conservative  dense        -       -
eig           jvp+vjp    jvp          conservative  dense        -       2
eigh          jvp+vjp    jvp          conservative  dense        -       2
einsum        jvp+vjp    multilinear  rule          dense        -       M
exp           partials   rule         elementwise   elementwise  -       EO
exp2          partials   rule         elementwise   elementwise  -       EO
expm1         partials   rule         elementwise   elementwise  -       EO
fft           transpose  linear       linear        dense        -       L
fmax          partials   generic      elementwise   elementwise  -       E
fmin          partials   generic      elementwise   elementwise  -       E
fmod          partials   generic      elementwise   elementwise  -       E
getitem       transpose  linear       rule          rule         -       L
hypot         partials   generic      elementwise   elementwise  -       EOS
imag          transpose  linear       linear        dense        -       L
inv           jvp+vjp    jvp          conservative  dense        -       -
irfft         transpose  linear       linear        dense        -       L
lane_shift    transpose  linear       rule          rule         -       L
log           partials   rule         elementwise   elementwise  -       ES
log10         partials   rule         elementwise   elementwise  -       ES
log1p         partials   rule         elementwise   elementwise  -       ES
log2          partials   rule         elementwise   elementwise  -       ES
logaddexp     partials   generic      elementwise   elementwise  -       EO
matmul        jvp+vjp    multilinear  rule          dense        -       M
maximum       partials   generic      elementwise   elementwise  -       E
minimum       partials   generic      elementwise   elementwise  -       E
multiply      partials   rule         rule          elementwise  -       EMs
negative      partials   rule         elementwise   elementwise  -       E
norm2         jvp+vjp    jvp          rule          rule         -       -
norm_svals    jvp+vjp    jvp          conservative  dense        -       -
pinv          jvp+vjp    jvp          conservative  dense        -       -
pow           partials   rule         elementwise   elementwise  -       EOS
power         partials   rule         elementwise   elementwise  -       ES
prod          jvp+vjp    jvp          rule          rule         -       -
qr            jvp+vjp    jvp          conservative  dense        -       2
real          transpose  linear       linear        dense        -       L
reciprocal    partials   rule         elementwise   elementwise  -       EO
reduce_max    jvp+vjp    jvp          rule          rule         -       -
reduce_min    jvp+vjp    jvp          rule          rule         -       -
remainder     partials   generic      elementwise   elementwise  -       E
reshape       transpose  linear       rule          rule         -       L
scatter_add   transpose  linear       rule          rule         -       L
sin           partials   rule         elementwise   elementwise  fused   E
sinc          partials   generic      elementwise   elementwise  -       E
sinh          partials   rule         elementwise   elementwise  -       E
slogdet       jvp+vjp    jvp          conservative  dense        -       2
solve         jvp+vjp    jvp          conservative  dense        -       -
sqrt          partials   rule         elementwise   elementwise  fused   EOS
square        partials   rule         elementwise   elementwise  fused   Es
stop_gradient jvp+vjp    declared     conservative  dense        -       -
subtract      partials   rule         elementwise   elementwise  -       E
sum           transpose  linear       rule          rule         -       L
svd           jvp+vjp    jvp          conservative  dense        -       3
tan           partials   rule         elementwise   elementwise  -       EO
tanh          partials   rule         elementwise   elementwise  fused   EO
to_complex    transpose  linear       linear        dense        -       L
transpose     transpose  linear       rule          rule         -       L
true_divide   partials   rule         elementwise   elementwise  -       EOS
where         jvp+vjp    rule         rule          rule         -       -
"""


def _load_everything() -> None:
    """Import every module dualad lists, so every built-in primitive is
    registered and every interpreter's table is filled."""
    for m in sorted(set(dualad._LAZY.values()) | set(dualad._SUBMODULES.values())):
        importlib.import_module(m)


_load_everything()

from dualad.forward import taylor as _taylor  # noqa: E402  (after every module is loaded)
from dualad.forward import taylor_series as _series  # noqa: E402
from dualad.kernels.table import EXPRESSIONS  # noqa: E402
from dualad.mixed import sparsity as _sparsity  # noqa: E402
from dualad.structured import rules as _structured_rules  # noqa: E402
from dualad.structured.interpreter import STRUCTURED_RULES  # noqa: E402

# Every per-interpreter table keyed by primitive.
TABLES = {
    "forward.taylor.TAYLOR_RULES": _taylor.TAYLOR_RULES,
    "forward.taylor_series._MATH": _series._MATH,
    "mixed.sparsity.SPARSITY_RULES": _sparsity.SPARSITY_RULES,
    "structured.rules.RULES": _structured_rules.RULES,
    "structured.interpreter.STRUCTURED_RULES": STRUCTURED_RULES,
    "kernels.table.EXPRESSIONS": EXPRESSIONS,
}


def builtin_primitives() -> list[Primitive]:
    """The registered primitives, less those made by custom_jvp/custom_vjp
    (named ``custom_jvp:...``) in other tests and the extension families
    registered on first use (``scipy.special.erf``: see
    :func:`test_extension_primitives_live_in_their_module`)."""
    return [p for n, p in sorted(registry.items()) if ":" not in n and "." not in n]


# ============================================================================
# the slot matrix
# ============================================================================
def _rules(p: Primitive) -> str:
    return "partials" if p.elementwise else "transpose" if p.linear else "jvp+vjp"


def _taylor_slot(p: Primitive) -> str:
    if p.taylor is not None:
        return "rule" if p in _taylor.TAYLOR_RULES else "declared"
    derived = _taylor._default_rule(p)
    return {_taylor._linear_rule: "linear", _taylor._multilinear_rule: "multilinear",
            _taylor._generic_rule: "generic", _taylor._jvp_rule: "jvp"}[derived]


def _sparsity_slot(p: Primitive) -> str:
    if p.sparsity is not None:
        return "rule" if p in _sparsity.SPARSITY_RULES else "declared"
    derived = _sparsity._default_rule(p)
    if derived is _sparsity._elementwise_rule:
        return "elementwise"
    if derived is _sparsity._conservative_rule:
        return "conservative"
    assert p.linear, p
    return "linear"


def _structured_slot(p: Primitive) -> str:
    return "rule" if p in STRUCTURED_RULES else "elementwise" if p.elementwise else "dense"


def _flags(p: Primitive) -> str:
    f = "".join(c for c, on in (("L", p.linear), ("E", p.elementwise), ("M", p.multilinear),
                                ("O", p.partials_use_out), ("S", p.singular is True),
                                ("s", p.singular == "out")) if on)
    if p.n_outputs > 1:
        f += str(p.n_outputs)
    return f or "-"


def slot_matrix() -> list[list[str]]:
    rows = [["name", "rules", "taylor", "sparsity", "structured", "kernel", "flags"]]
    for p in builtin_primitives():
        rows.append([p.name, _rules(p), _taylor_slot(p), _sparsity_slot(p), _structured_slot(p),
                     "fused" if p.fused else "-", _flags(p)])
    return rows


def _render(rows) -> list[str]:
    widths = [13, 10, 12, 13, 12, 7, 0]
    return [" ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def test_slot_matrix_matches_the_declared_expectation() -> None:
    got = _render(slot_matrix())
    print("\n" + "\n".join(got))
    want = _render([line.split() for line in EXPECTED.strip().splitlines()])
    diff = "\n".join(difflib.unified_diff(want, got, "EXPECTED", "registry", lineterm=""))
    assert got == want, ("the slot matrix changed; if on purpose, update EXPECTED in "
                         "tests/test_slot_matrix.py:\n" + diff)


def test_fused_flag_is_the_kernel_table() -> None:
    assert {p for p in builtin_primitives() if p.fused} == set(EXPRESSIONS)


# ============================================================================
# tables keyed by primitive objects, never by names
# ============================================================================
@pytest.mark.parametrize("table", sorted(TABLES))
def test_tables_hold_only_registered_primitives(table: str) -> None:
    for key in TABLES[table]:
        assert isinstance(key, Primitive), f"{table} has a key {key!r} that is not a Primitive"
        assert registry.get(key.name) is key, f"{table} holds an unregistered {key!r}"


def test_interpreter_slots_come_from_their_tables() -> None:
    for prim, rule in _taylor.TAYLOR_RULES.items():
        assert prim.taylor is rule, prim
    for prim, rule in _sparsity.SPARSITY_RULES.items():
        assert prim.sparsity is rule, prim


def test_every_primitive_is_bound_to_its_module_level_name() -> None:
    """``<name>_p`` in the module that declares it (rules/*, custom.py)."""
    bound = {}
    modules = [importlib.import_module("dualad.custom")]
    modules += [importlib.import_module(f"dualad.rules.{m.name}")
                for m in pkgutil.iter_modules(importlib.import_module("dualad.rules").__path__)]
    for mod in modules:
        for attr, value in vars(mod).items():
            if isinstance(value, Primitive) and attr == value.name + "_p":
                bound[value.name] = value
    missing = [p.name for p in builtin_primitives() if bound.get(p.name) is not p]
    assert not missing, f"primitives not bound to a module-level <name>_p: {missing}"


def test_extension_primitives_live_in_their_module() -> None:
    """Primitives named ``scipy.special.*`` are made by
    dualad.rules.scipy_special (registered when SciPy's ufuncs first meet a
    traced value), each implementing that SciPy function."""
    pytest.importorskip("scipy")
    import scipy.special as sc

    import dualad.rules.scipy_special  # noqa: F401
    ext = [p for n, p in registry.items() if n.startswith("scipy.special.")]
    assert ext
    for p in ext:
        public = getattr(sc, p.name.rsplit(".", 1)[1], None)
        assert public is not None, p.name
        x = np.array([1.3, 1.6])
        nin = p.impl.nin if isinstance(p.impl, np.ufunc) else public.nin if isinstance(
            public, np.ufunc) else 2
        args = (x,) * nin
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(p.impl(*args), public(*args))


def test_no_string_lookups_of_primitives() -> None:
    """Rules and interpreters hold Primitive objects: ``registry`` (name ->
    Primitive) is for enumeration (tests, the op table) only."""
    pkg = Path(dualad.__file__).parent
    lookup = re.compile(r"registry(\[|\.get\()")
    bad = []
    for path in sorted(pkg.rglob("*.py")):
        if path == pkg / "core" / "registry.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if lookup.search(line) and ">>>" not in line:
                bad.append(f"{path.relative_to(pkg.parent)}:{i}: {line.strip()}")
    assert not bad, "string lookups of primitives:\n" + "\n".join(bad)


# ============================================================================
# partials_use_out: the declaration agrees with what the partials read
# ============================================================================
PARAMS = {"power": {"exponent": 2.5}}
DOMAIN = {"arccosh": (1.2, 1.8)}


def _partials_inputs(p: Primitive, rng) -> list:
    names = list(inspect.signature(p.partials).parameters)[1:]      # after out
    n = len([a for a in names if a not in PARAMS.get(p.name, {})])
    lo, hi = DOMAIN.get(p.name, (0.2, 0.8))
    return [rng.uniform(lo, hi, 5) for _ in range(n)]


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


@pytest.mark.parametrize("prim", [p for p in builtin_primitives() if p.elementwise],
                         ids=lambda p: p.name)
def test_partials_use_out_is_declared_right(prim: Primitive) -> None:
    rng = np.random.default_rng(0)
    xs = _partials_inputs(prim, rng)
    params = PARAMS.get(prim.name, {})
    out = prim.impl(*xs, **params)
    assert np.all(np.isfinite(out)), f"pick inputs inside {prim.name}'s domain"
    real = prim.partials(out, *xs, **params)
    nan = prim.partials(np.full_like(out, np.nan), *xs, **params)
    reads_out = not all(_same(a, b) for a, b in zip(real, nan))
    assert prim.partials_use_out == reads_out, (
        f"{prim.name}: declare partials_use_out={reads_out} where it is defined")


def test_taylor_refuses_partials_that_read_an_undeclared_out() -> None:
    from dualad.forward.taylor import derivative
    # Built directly (not registered): a wrong declaration must raise, never
    # give silently wrong coefficients.
    for partials in (lambda out, x: (out,), lambda out, x: (2.0 * out,)):
        wrong = Primitive("wrong_exp", np.exp, partials=partials)
        with pytest.raises(TypeError, match="partials_use_out=True"):
            derivative(lambda x, p=wrong: bind(p, x), 0.3, order=3)
    right = Primitive("right_exp", np.exp, partials=lambda out, x: (out,), partials_use_out=True)
    assert float(derivative(lambda x: bind(right, x), 0.3, order=3)) == pytest.approx(
        np.exp(0.3), rel=1e-14)
