"""vmap against Python loops: every op-table row (all shape families), its
gradient under vmap, nestings with grad/jvp/hessian, in_axes/out_axes."""
from __future__ import annotations

import numpy as np
import pytest

import dualad as da
from dualad.batching.rules import FALLBACK, uses_fallback
from dualad.core.registry import registry
from dualad.core.tree import tree_flatten
from tests.test_op_table import CASES, IDS

B = 3
SCALES = (1.0, 1.03, 1.06)     # stays inside every row's smooth domain


def _batch(spec, family):
    args = spec.args(family)
    return [tuple(a * s for a in args) for s in SCALES]


def _stack(outs):
    leaves = [tree_flatten(o)[0] for o in outs]
    return [np.stack([np.asarray(l[i]) for l in leaves]) for i in range(len(leaves[0]))]


def _close(got, want):
    got = tree_flatten(got)[0]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert not hasattr(g, "_level")
        assert np.shape(g) == np.shape(w), (np.shape(g), np.shape(w))
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spec, family", CASES, ids=IDS)
def test_vmap_row_equals_loop(spec, family):
    per = _batch(spec, family)
    stacked = [np.stack(a) for a in zip(*per)]
    _close(da.vmap(spec.fn)(*stacked), _stack([spec.fn(*a) for a in per]))
    # only the first argument mapped, the others broadcast; batch axis last
    if len(stacked) > 1:
        rest = per[0][1:]
        got = da.vmap(spec.fn, in_axes=(-1,) + (None,) * len(rest))(
            np.moveaxis(stacked[0], 0, -1), *rest)
        _close(got, _stack([spec.fn(a[0], *rest) for a in per]))


def _total(fn):
    def f(*args):
        return sum(np.sum(leaf) for leaf in tree_flatten(fn(*args))[0])
    return f


@pytest.mark.parametrize("spec, family", CASES, ids=IDS)
def test_vmap_grad_row_equals_loop(spec, family):
    per = _batch(spec, family)
    stacked = [np.stack(a) for a in zip(*per)]
    g = da.grad(_total(spec.fn))
    _close(da.vmap(g)(*stacked), _stack([g(*a) for a in per]))
    # and the other order: the gradient of a batched sum
    got = da.grad(lambda *xs: da.vmap(_total(spec.fn))(*xs).sum(),
                  grad_position=tuple(range(len(stacked))))(*stacked)
    _close(got if len(stacked) > 1 else (got,),
           [np.stack(t) for t in zip(*[tree_flatten(
               da.grad(_total(spec.fn), grad_position=tuple(range(len(a))))(*a))[0]
               for a in per])])


def test_fallback_primitives_listed():
    """Which registry primitives are batched by the per-example loop (a
    deliberate, documented list; today: none of the built-in ones)."""
    looped = sorted(n for n, p in registry.items() if uses_fallback(p))
    assert set(looped) <= set(FALLBACK) | _custom_names(), looped


def _custom_names():
    return {n for n, p in registry.items() if "custom" in repr(p.jvp) + repr(p.vjp)}
