"""The record/replay safety contract (dualad.mixed.replay) and the mixed/
plumbing around it: observed reads, guards, bounded caches, execution
options, the CSR flag, the memory budget context."""
import pathlib
import threading

import numpy as np
import pytest

import dualad as da
from dualad.core.backend import all_finite_value, dtype_of, namespace_of, value_type
from dualad.mixed import budget, planner
from dualad.mixed.cache import MAX_PATTERNS, MAX_PLANS, cache_for, clear_cache
from dualad.mixed.patterns import pattern, volatile_reads
from dualad.mixed.replay import record
from dualad.mixed.runner import ExecOptions

PKG = pathlib.Path(da.__file__).parent


@pytest.fixture(autouse=True)
def fresh():
    clear_cache()
    yield
    clear_cache()


# ============================================================================
# the contract: metadata free, finiteness guarded, every other read observed
# ============================================================================
def test_metadata_reads_keep_the_recording():
    def f(x):
        assert dtype_of(x) == np.float64 and value_type(x) is np.ndarray
        assert namespace_of(x) is np and x.shape == (3,) and x.dtype == np.float64
        return np.zeros(x.shape, dtype=x.dtype) + np.sin(x) * 2.0
    out, rep = record(f, (np.zeros(3),))
    assert rep is not None
    np.testing.assert_allclose(rep(np.full(3, np.pi / 2))[0], [2.0, 2.0, 2.0])


@pytest.mark.parametrize("read", [
    lambda x: x * 2.0 if x[0] > 0 else x,                  # a branch
    lambda x: x[np.argsort(x)],                            # a data-dependent index
    lambda x: x + 1.0 if bool(np.all(x > -1)) else x,
])
def test_small_value_reads_are_guards(read):
    # A read of at most MAX_GUARDED_READ elements is a guard on that value:
    # the replay is right wherever it runs, and refuses where the value differs.
    out, rep = record(read, (np.linspace(1.0, 2.0, 3),))
    assert rep is not None
    for x in (np.linspace(1.0, 2.0, 3), np.linspace(2.0, 1.0, 3), np.linspace(-3.0, 1.0, 3)):
        got = rep(x)
        assert got is None or np.array_equal(got[0], read(x))
    assert rep(np.linspace(1.0, 2.0, 3)) is not None


@pytest.mark.parametrize("read", [
    lambda x: x[np.argsort(x)],                            # reads 40 values
    lambda x: x[np.nonzero(x > 1.5)],
])
def test_large_value_reads_refuse_the_recording(read):
    out, rep = record(read, (np.linspace(1.0, 2.0, 40),))
    assert rep is None


def test_comparisons_are_recorded():
    out, rep = record(lambda x: np.where(x > 1.5, x, -x) + (x < 1.2), (np.linspace(1, 2, 40),))
    assert rep is not None
    x = np.linspace(0.0, 3.0, 40)
    np.testing.assert_array_equal(rep(x)[0], np.where(x > 1.5, x, -x) + (x < 1.2))


def test_finiteness_is_a_guard_not_a_refusal():
    def f(x):
        assert all_finite_value(x)
        return np.sqrt(x) * 2.0
    out, rep = record(f, (np.ones(2),))
    assert rep is not None
    np.testing.assert_allclose(rep(np.array([4.0, 9.0]))[0], [4.0, 6.0])
    assert rep(np.array([np.inf, 1.0])) is None          # the guard fails: interpret


def test_replay_checks_shape_and_dtype():
    _, rep = record(lambda x: x * 2.0, (np.ones(2),))
    with pytest.raises(ValueError, match="shape"):
        rep(np.ones(3))
    with pytest.raises(ValueError, match="dtype"):
        rep(np.ones(2, dtype=np.float32))


def test_sparsity_metadata_is_not_volatile_but_values_are():
    x = np.linspace(0.1, 1.0, 6)
    f = lambda x: np.zeros(x.shape, dtype=x.dtype) + x[1:].sum() * x[0]
    pattern(f, (x,), (0,), "jacobian")
    assert volatile_reads(f, (x,), (0,), "jacobian") == ()
    g = lambda x: np.sort(x) * 2.0
    pattern(g, (x,), (0,), "jacobian")
    assert volatile_reads(g, (x,), (0,), "jacobian")


# Frame inspection never decides what is computed or reused. The one use left
# builds an error message (naming ``math.sin`` / ``numpy.vectorize`` when a
# conversion is refused) on the raise path only.
MESSAGE_ONLY = {("core/dispatch.py", "_caller")}


def test_no_frame_inspection_anywhere():
    import ast
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        assert "classify_read" not in text, path
        if "_getframe" not in text:
            continue
        rel = str(path.relative_to(PKG))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and "_getframe" in ast.unparse(node):
                assert (rel, node.name) in MESSAGE_ONLY, f"frame inspection in {rel}:{node.name}"


# ============================================================================
# caches: bounded, keyed by types/shapes where values do not matter
# ============================================================================
def test_new_float_argument_every_call_does_not_grow_the_caches():
    f = lambda x, t: t * np.sum(x[1:] * x[:-1] ** 2) + np.sum(np.cos(x))
    x = np.linspace(-1.0, 1.0, 40)
    ref = da.hessian(f, mode="fwd-rev")
    for k in range(3 * MAX_PATTERNS):
        t = 1.0 + 0.01 * k
        h = da.hessian(f)(x, t)
        if k % 50 == 0:
            np.testing.assert_allclose(h, ref(x, t), rtol=1e-12, atol=1e-12)
    c = cache_for(f)
    assert len(c.plans) == 2          # auto and fwd-rev: plans are keyed by types and shapes
    assert len(c.patterns) <= MAX_PATTERNS and len(c.colorings) <= MAX_PATTERNS
    for k in range(3 * MAX_PLANS):             # new shapes: bounded too
        planner.plan(f, np.ones(3 + k), 1.0, kind="hessian")
    assert len(c.plans) <= MAX_PLANS


def test_unweakrefable_callable_is_held_not_keyed_by_id():
    c1 = cache_for(np.sin)
    assert cache_for(np.sin) is c1
    p = da.plan(np.sin, np.ones(4))
    assert da.plan(np.sin, np.zeros(4)) is p


# ============================================================================
# execution options, the CSR flag
# ============================================================================
def test_exec_options_are_one_frozen_object():
    opts = ExecOptions(chunk=3)
    with pytest.raises(AttributeError):
        opts.chunk = 4
    assert opts.with_chunk(7) is opts and ExecOptions().with_chunk(7).chunk == 7
    assert not opts.chunked and ExecOptions(progress=True).chunked


def test_csr_flag_and_deprecated_sparse():
    sp = pytest.importorskip("scipy.sparse")
    f = lambda x: np.sum(x[1:] * x[:-1] ** 2)
    x = np.linspace(0.5, 1.5, 6)
    h = da.hessian(f, csr=True)(x)
    assert sp.issparse(h) and h.format == "csr"
    with pytest.warns(DeprecationWarning, match="csr=True"):
        old = da.hessian(f, sparse=True)(x)
    np.testing.assert_array_equal(old.toarray(), h.toarray())
    with pytest.warns(DeprecationWarning):
        j = da.jacobian(lambda x: x[1:] * x[:-1], sparse=True)(x)
    np.testing.assert_allclose(j.toarray(), da.jacobian(lambda x: x[1:] * x[:-1], csr=True)(x)
                               .toarray())
    for mode in ("fwd-rev", "sparse", "structured", "hyperdual"):
        np.testing.assert_allclose(da.hessian(f, mode=mode, csr=True)(x).toarray(),
                                   da.hessian(f, mode="fwd-rev")(x), rtol=1e-12, atol=1e-12)


def test_structured_falls_back_in_mixed_inside_a_transform():
    f = lambda x: np.sum(x[1:] ** 2 * x[:-1] ** 3)
    x = np.array([0.5, 1.2, -0.7])
    got = da.jacfwd(lambda x: da.hessian(f, mode="structured")(x)[0, 1])(x)
    want = da.jacfwd(lambda x: da.hessian(f, mode="fwd-rev")(x)[0, 1])(x)
    np.testing.assert_allclose(got, want, rtol=1e-13)


# ============================================================================
# the planner: candidates and reasons
# ============================================================================
def test_choose_returns_a_candidate_and_the_reason_names_skipped_modes():
    pr = planner.Probe(3, 7, 56, 3, 1)
    cands = planner.dense_candidates("hessian", pr, 2**30)
    best = planner.choose(cands, "fwd-rev")
    assert isinstance(best, planner.Candidate) and best.mode == "fwd-rev"
    p = da.plan(lambda x: np.sum(x ** 4), np.ones(5), kind="hessian")
    for text in ("sparse skipped: below 32 inputs", "structured skipped: below 32 inputs",
                 "rev-rev", "hyperdual", "fwd-fwd"):
        assert text in p.reason, p.reason


# ============================================================================
# the memory budget: context per thread, real limits
# ============================================================================
def test_memory_budget_context_is_thread_local_and_nests():
    default = budget.get_memory_budget()
    seen = []
    with da.memory_budget("64MB"):
        assert budget.get_memory_budget() == 64 * 2**20
        with da.memory_budget(2**20):
            assert budget.get_memory_budget() == 2**20
        t = threading.Thread(target=lambda: seen.append(budget.get_memory_budget()))
        t.start()
        t.join()
        assert budget.get_memory_budget() == 64 * 2**20
        assert da.plan(lambda x: np.sum(x), np.ones(3)).memory_budget == 64 * 2**20
    assert seen == [default] and budget.get_memory_budget() == default


def test_available_memory_respects_cgroup_and_rlimit(monkeypatch):
    resource = pytest.importorskip("resource")
    files = {"/sys/fs/cgroup/memory.max": 3 * 2**30, "/sys/fs/cgroup/memory.current": 2**30}
    monkeypatch.setattr(budget, "_read_int", lambda path: files.get(path))
    monkeypatch.setattr(budget, "_meminfo", lambda name: 64 * 2**30)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    assert budget.available_memory() == 2 * 2**30
    monkeypatch.setattr(resource, "getrlimit", lambda which: (5 * 2**30, resource.RLIM_INFINITY))
    monkeypatch.setattr(budget, "_vm_size", lambda: 4 * 2**30)
    assert budget.available_memory() == 2**30


def test_parameter_bound_context():
    p = da.Parameter([1.0, 2.0], name="p")
    with p.bound(np.array([3.0, 4.0])):
        with p.bound(np.array([5.0, 6.0])):
            assert float(np.sum(p)) == 11.0
        assert float(np.sum(p)) == 7.0
    assert float(np.sum(p)) == 3.0
    g = da.grad(lambda x: np.sum(p * x), None, weights=[p])(np.array([2.0, 5.0]))
    np.testing.assert_allclose(g[0], [2.0, 5.0])
