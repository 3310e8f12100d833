"""The project-wide op table: one row per supported NumPy function.

Each :class:`OpSpec` row is a callable on float arrays plus an input
generator per shape family (scalar, vector, matrix, broadcast, ...). Every
(row, family) pair is checked with ``dualad.testing.check_grads`` in forward
and reverse mode to order 2, after checking that the traced primal equals
NumPy's own result. Inputs stay inside each op's smooth domain (no ties for
max/min, SPD matrices for cholesky, distinct eigenvalues for eigh, ...).

Meta-tests: every primitive in ``dualad.core.registry.registry`` must be bound
by at least one row (recorded by a spy on ``Primitive.impl`` and ``bind``
while the rows run), and ``dualad.core.registry.missing_rules()`` must be empty.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest

import dualad as da
from dualad.core import registry as primitive
from dualad.core.dispatch import Tracer
from dualad.core.tree import tree_flatten
from dualad.testing import check_grads

LA = np.linalg


# ============================================================================
# input generators: g(rng, shape) -> array
# ============================================================================
def U(lo: float, hi: float):
    """Uniform in [lo, hi]."""
    return lambda rng, s: rng.uniform(lo, hi, s)


def S(lo: float, hi: float):
    """Magnitude in [lo, hi] with a random sign (away from 0: abs, sign, masks)."""
    return lambda rng, s: rng.uniform(lo, hi, s) * rng.choice([-1.0, 1.0], size=s)


def D(rng, s):
    """Distinct values at least 0.3 apart (no ties for max/min/sort)."""
    n = int(np.prod(s, dtype=np.int64))
    v = (rng.permutation(n) - n / 2) * 0.5 + rng.uniform(-0.1, 0.1, n)
    return v.reshape(s)


def DA(rng, s):
    """Distinct magnitudes at least 0.3 apart, random signs (inf-norms)."""
    n = int(np.prod(s, dtype=np.int64))
    v = (rng.permutation(n) + 1) * 0.5 + rng.uniform(-0.1, 0.1, n)
    return (v * rng.choice([-1.0, 1.0], size=n)).reshape(s)


def GRID(off: float):
    """Integers + ``off`` + small noise: two GRIDs with offsets 0 and 0.5 never tie."""
    return lambda rng, s: rng.integers(-3, 3, s) + off + rng.uniform(-0.15, 0.15, s)


def CLIPPABLE(rng, s):
    """Values on both sides of the clip bounds +-0.5, never on them."""
    pool = np.array([-0.9, -0.7, -0.3, -0.1, 0.2, 0.35, 0.7, 0.95])
    return rng.choice(pool, size=s) + rng.uniform(-0.03, 0.03, s)


def WELL(rng, s):
    """Well-conditioned (stacks of) matrices: 3 I + small noise (full rank)."""
    return 3.0 * np.eye(s[-2], s[-1]) + 0.3 * rng.standard_normal(s)


def SYM(rng, s):
    """Near-diagonal with distinct diagonal 1..n: symmetrised by the row, its
    eigenvalues are distinct and it is positive definite."""
    return np.diag(np.arange(1.0, s[-1] + 1.0)) + 0.1 * rng.standard_normal(s)


N = U(-1.0, 1.0)
POS = U(0.5, 2.0)


# ============================================================================
# rows
# ============================================================================
@dataclass(frozen=True)
class OpSpec:
    """One row: ``fn`` on float arrays; ``families`` maps a shape-family name
    to one shape per argument; ``gens`` one generator per argument (or one
    for all)."""

    name: str
    fn: Callable
    families: dict
    gens: tuple = (N,)

    def args(self, family: str) -> tuple:
        rng = np.random.default_rng(zlib.crc32(f"{self.name}/{family}".encode()))
        shapes = self.families[family]
        gens = self.gens if len(self.gens) == len(shapes) else self.gens * len(shapes)
        return tuple(np.asarray(g(rng, s), dtype=np.float64)
                     for g, s in zip(gens, shapes, strict=True))


def op(name, fn, families, *gens):
    return OpSpec(name, fn, families, gens or (N,))


UN = {"scalar": [()], "vector": [(5,)], "matrix": [(3, 4)], "tensor3": [(2, 3, 2)]}
BI = {"scalar": [(), ()], "vector": [(5,), (5,)], "matrix": [(3, 4), (3, 4)],
      "broadcast": [(3, 1), (4,)], "array-scalar": [(2, 3), ()]}
VMT = {"vector": [(5,)], "matrix": [(3, 4)], "tensor3": [(2, 3, 4)]}
SVMT = {"scalar": [()], **VMT}
MT = {"matrix": [(3, 4)], "tensor3": [(2, 3, 4)]}
SQ = {"matrix": [(4, 4)], "batched": [(2, 3, 3)]}
V3 = {"vector": [(5,)], "matrix": [(3, 4)], "tensor3": [(3, 2, 2)]}
M3 = {"matrix": [(3, 4)], "tensor3": [(3, 2, 4)]}


def _sym(a):
    return (a + np.swapaxes(a, -1, -2)) / 2


def _mask(shape):
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape) % 3 != 1


def _along(shape):
    return (np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape) * 7) % shape[-1]


ROWS: list[OpSpec] = [
    # -- arithmetic ufuncs ----------------------------------------------------
    op("add", np.add, BI),
    op("subtract", np.subtract, BI),
    op("multiply", np.multiply, BI),
    op("true_divide", np.true_divide, BI, N, S(0.5, 2.0)),
    op("divide", np.divide, BI, N, S(0.5, 2.0)),
    op("operators + - * / unary-", lambda x, y: -(x + y) * x - y / (x * x + 1.0), BI),
    op("python constants", lambda x: (2.0 - x) * 3 + x / 4.0 - 1 / (x + 3.0) + 2 ** x - 1, UN),
    op("negative", np.negative, UN),
    op("positive", np.positive, UN),
    op("power(x, 3.0)", lambda x: np.power(x, 3.0), UN),
    op("x ** 2 (int)", lambda x: x ** 2, UN),
    op("power(x, 2.5)", lambda x: np.power(x, 2.5), UN, POS),
    op("x ** -1.5", lambda x: x ** -1.5, UN, POS),
    op("power(x, p) array exponent", np.power, BI, POS, U(-2.0, 2.0)),
    op("power(x, const array)", lambda x: np.power(x, np.linspace(-1.5, 2.5, 4)),
       {"vector": [(4,)], "broadcast": [(3, 1)]}, POS),
    op("2.0 ** x", lambda x: 2.0 ** x, UN),
    op("square", np.square, UN),
    op("sqrt", np.sqrt, UN, POS),
    op("cbrt", np.cbrt, UN, S(0.5, 2.0)),
    op("reciprocal", np.reciprocal, UN, S(0.5, 2.0)),
    op("absolute", np.absolute, UN, S(0.2, 2.0)),
    op("abs()", lambda x: abs(x), UN, S(0.2, 2.0)),
    # -- exponentials and logarithms -------------------------------------------
    op("exp", np.exp, UN),
    op("exp2", np.exp2, UN),
    op("expm1", np.expm1, UN),
    op("log", np.log, UN, POS),
    op("log2", np.log2, UN, POS),
    op("log10", np.log10, UN, POS),
    op("log1p", np.log1p, UN, U(-0.5, 2.0)),
    op("logaddexp", np.logaddexp, BI),
    # -- trigonometric and hyperbolic ------------------------------------------
    op("sin", np.sin, UN),
    op("cos", np.cos, UN),
    op("tan", np.tan, UN, U(-1.2, 1.2)),
    op("arcsin", np.arcsin, UN, U(-0.9, 0.9)),
    op("arccos", np.arccos, UN, U(-0.9, 0.9)),
    op("arctan", np.arctan, UN, U(-2.0, 2.0)),
    op("arctan2", np.arctan2, BI, S(0.3, 2.0)),
    op("hypot", np.hypot, BI, S(0.3, 2.0)),
    op("sinh", np.sinh, UN),
    op("cosh", np.cosh, UN),
    op("tanh", np.tanh, UN),
    op("arcsinh", np.arcsinh, UN, U(-2.0, 2.0)),
    op("arccosh", np.arccosh, UN, U(1.2, 3.0)),
    op("arctanh", np.arctanh, UN, U(-0.9, 0.9)),
    # -- piecewise -------------------------------------------------------------
    op("maximum", np.maximum, BI, GRID(0.0), GRID(0.5)),
    op("minimum", np.minimum, BI, GRID(0.0), GRID(0.5)),
    op("fmax", np.fmax, BI, GRID(0.0), GRID(0.5)),
    op("fmin", np.fmin, BI, GRID(0.0), GRID(0.5)),
    op("clip(x, -0.5, 0.5)", lambda x: np.clip(x, -0.5, 0.5), UN, CLIPPABLE),
    op("clip(x, None, 0.5)", lambda x: np.clip(x, None, 0.5), UN, CLIPPABLE),
    op("x.clip(-0.5, 0.5)", lambda x: x.clip(-0.5, 0.5), UN, CLIPPABLE),
    op("clip(x, lo, hi) traced bounds", np.clip,
       {"vector": [(5,), (5,), (5,)], "broadcast": [(3, 4), (4,), ()]},
       CLIPPABLE, U(-0.55, -0.45), U(0.45, 0.55)),
    # mod: |x / y - k - 1/2| < 0.33 for every sample, away from the jumps
    op("remainder", np.remainder, BI, GRID(0.5), S(0.95, 1.05)),
    op("x % y", lambda x, y: x % y, BI, GRID(0.5), S(0.95, 1.05)),
    op("2.5 % y", lambda y: 2.5 % y, UN, S(0.7, 0.8)),
    op("fmod", np.fmod, BI, GRID(0.5), S(0.95, 1.05)),
    op("astype(float64)", lambda x: x.astype(np.float64) * 1.0, UN),
    # -- reductions --------------------------------------------------------------
    op("sum", np.sum, SVMT),
    op("sum(axis=0)", lambda x: np.sum(x, axis=0), VMT),
    op("sum(axis=-1, keepdims)", lambda x: np.sum(x, axis=-1, keepdims=True), VMT),
    op("sum(axis=(0, 2))", lambda x: np.sum(x, axis=(0, 2)), {"tensor3": [(2, 3, 4)]}),
    op("x.sum(1)", lambda x: x.sum(1), MT),
    op("mean", np.mean, SVMT),
    op("mean(axis=1)", lambda x: np.mean(x, axis=1), MT),
    op("x.mean((0, 1), keepdims)", lambda x: x.mean(axis=(0, 1), keepdims=True), MT),
    op("prod", np.prod, SVMT, S(0.5, 1.5)),
    op("prod(axis=0)", lambda x: np.prod(x, axis=0), VMT, S(0.5, 1.5)),
    op("prod(axis=1, keepdims)", lambda x: x.prod(axis=1, keepdims=True), MT, S(0.5, 1.5)),
    op("max", np.max, SVMT, D),
    op("max(axis=1)", lambda x: np.max(x, axis=1), MT, D),
    op("x.max(0, keepdims)", lambda x: x.max(axis=0, keepdims=True), VMT, D),
    op("min", np.min, SVMT, D),
    op("min(axis=-1)", lambda x: np.min(x, axis=-1), VMT, D),
    op("amax", np.amax, VMT, D),
    op("amax(axis=(0, 1))", lambda x: np.amax(x, axis=(0, 1)), MT, D),
    op("amin", np.amin, VMT, D),
    op("amin(axis=0, keepdims)", lambda x: np.amin(x, axis=0, keepdims=True), MT, D),
    op("cumsum", np.cumsum, VMT),
    op("cumsum(axis=0)", lambda x: np.cumsum(x, axis=0), VMT),
    op("x.cumsum(axis=-1)", lambda x: x.cumsum(axis=-1), MT),
    op("cumprod", np.cumprod, VMT, S(0.5, 1.5)),
    op("cumprod(axis=1)", lambda x: np.cumprod(x, axis=1), MT, S(0.5, 1.5)),
    op("var", np.var, VMT),
    op("var(axis=0, ddof=1)", lambda x: np.var(x, axis=0, ddof=1), MT),
    op("x.var(-1, keepdims)", lambda x: x.var(axis=-1, keepdims=True), VMT),
    op("std", np.std, VMT),
    op("std(axis=1, ddof=1)", lambda x: np.std(x, axis=1, ddof=1), MT),
    op("x.std(0, keepdims)", lambda x: x.std(axis=0, keepdims=True), MT),
    op("norm (vector 2 / matrix fro)", LA.norm, {"vector": [(5,)], "matrix": [(3, 4)]}),
    op("norm(ord=1) vector", lambda x: LA.norm(x, 1), {"vector": [(5,)]}, S(0.2, 2.0)),
    op("norm(ord=inf) vector", lambda x: LA.norm(x, np.inf), {"vector": [(5,)]}, DA),
    op("norm(ord=3) vector", lambda x: LA.norm(x, 3), {"vector": [(5,)]}, S(0.2, 2.0)),
    op("norm(axis=1) vectors", lambda x: LA.norm(x, axis=1), MT),
    op("norm(axis=0, keepdims)", lambda x: LA.norm(x, axis=0, keepdims=True), MT),
    op("norm('fro')", lambda x: LA.norm(x, "fro"), {"matrix": [(3, 4)]}),
    op("norm('nuc')", lambda x: LA.norm(x, "nuc"), {"matrix": [(3, 4)]}),
    op("norm(ord=2) matrix", lambda x: LA.norm(x, 2), {"matrix": [(3, 4)]}),
    op("norm(ord=1) matrix", lambda x: LA.norm(x, 1), {"matrix": [(3, 4)]}, DA),
    op("norm(ord=inf) matrix", lambda x: LA.norm(x, np.inf), {"matrix": [(3, 4)]}, DA),
    op("norm('fro', axis=(1, 2), keepdims)",
       lambda x: LA.norm(x, "fro", axis=(1, 2), keepdims=True), {"tensor3": [(2, 3, 4)]}),
    # -- shape -------------------------------------------------------------------
    op("reshape(-1)", lambda x: np.reshape(x, (-1,)), SVMT),
    op("reshape(2, -1)", lambda x: np.reshape(x, (2, -1)), {"matrix": [(3, 4)]}),
    op("x.reshape(4, 3)", lambda x: x.reshape(4, 3), {"matrix": [(3, 4)]}),
    op("ravel", np.ravel, VMT),
    op("x.flatten()", lambda x: x.flatten(), VMT),
    op("transpose", np.transpose, SVMT),
    op("transpose(axes)", lambda x: np.transpose(x, (1, 2, 0)), {"tensor3": [(2, 3, 4)]}),
    op("x.T", lambda x: x.T, VMT),
    op("x.transpose(1, 0, 2)", lambda x: x.transpose(1, 0, 2), {"tensor3": [(2, 3, 4)]}),
    op("swapaxes", lambda x: np.swapaxes(x, 0, -1), MT),
    op("moveaxis", lambda x: np.moveaxis(x, 0, -1), MT),
    op("moveaxis(tuple)", lambda x: np.moveaxis(x, (0, 1), (2, 0)), {"tensor3": [(2, 3, 4)]}),
    op("expand_dims(0)", lambda x: np.expand_dims(x, 0), SVMT),
    op("expand_dims((0, -1))", lambda x: np.expand_dims(x, (0, -1)), VMT),
    op("squeeze", np.squeeze, {"unit-axes": [(3, 1, 4)], "all-unit": [(1, 1)]}),
    op("squeeze(axis=1)", lambda x: np.squeeze(x, axis=1), {"unit-axes": [(3, 1, 1)]}),
    op("broadcast_to", lambda x: np.broadcast_to(x, (2, 3, 4)),
       {"scalar": [()], "vector": [(4,)], "broadcast": [(3, 1)]}),
    op("concatenate", lambda x, y: np.concatenate([x, y]), {
        "vector": [(3,), (4,)], "matrix": [(2, 4), (3, 4)]}),
    op("concatenate(axis=1) with constant",
       lambda x, y: np.concatenate([x, np.ones((3, 2)), y], axis=1),
       {"matrix": [(3, 4), (3, 1)]}),
    op("stack", lambda x, y: np.stack([x, y]), BI | {"broadcast": [(3, 4), (3, 4)],
                                                    "array-scalar": [(), ()]}),
    op("stack(axis=-1)", lambda x, y: np.stack((x, y), axis=-1), {"matrix": [(3, 4), (3, 4)]}),
    op("hstack", lambda x, y: np.hstack([x, y]), {
        "scalar": [(), ()], "vector": [(3,), (4,)], "matrix": [(3, 2), (3, 4)]}),
    op("vstack", lambda x, y: np.vstack([x, y]), {
        "vector": [(4,), (4,)], "matrix": [(2, 4), (3, 4)]}),
    op("split(2)", lambda x: np.split(x, 2), {"vector": [(6,)], "matrix": [(4, 3)]}),
    op("split([1, 3], axis=1)", lambda x: np.split(x, [1, 3], axis=1), {"matrix": [(3, 5)]}),
    op("tile", lambda x: np.tile(x, 2), SVMT),
    op("tile((2, 1, 3))", lambda x: np.tile(x, (2, 1, 3)), VMT),
    op("repeat(2)", lambda x: np.repeat(x, 2), SVMT),
    op("repeat([1, 0, 3], axis=0)", lambda x: np.repeat(x, [1, 0, 3], axis=0),
       {"vector": [(3,)], "matrix": [(3, 4)]}),
    op("x.repeat(2, axis=1)", lambda x: x.repeat(2, axis=1), MT),
    op("flip", np.flip, VMT),
    op("flip(axis=1)", lambda x: np.flip(x, axis=1), MT),
    op("roll(2)", lambda x: np.roll(x, 2), VMT),
    op("roll((1, -1), axis=(0, 1))", lambda x: np.roll(x, (1, -1), axis=(0, 1)), MT),
    op("diagonal", np.diagonal, {"matrix": [(3, 4)], "square": [(4, 4)]}),
    op("diagonal(offset=1, axes)", lambda x: np.diagonal(x, 1, 0, 2), {"tensor3": [(3, 2, 4)]}),
    op("x.diagonal(-1)", lambda x: x.diagonal(-1), {"matrix": [(4, 3)]}),
    op("trace", np.trace, {"matrix": [(3, 4)], "square": [(4, 4)], "tensor3": [(3, 3, 2)]}),
    op("x.trace(offset=1)", lambda x: x.trace(offset=1), {"matrix": [(3, 4)]}),
    op("diag(vector) -> matrix", np.diag, {"vector": [(4,)]}),
    op("diag(v, k=1)", lambda x: np.diag(x, k=1), {"vector": [(3,)]}),
    op("diag(matrix) -> vector", np.diag, {"matrix": [(3, 4)], "square": [(4, 4)]}),
    op("diag(m, k=-1)", lambda x: np.diag(x, k=-1), {"matrix": [(4, 4)]}),
    op("triu", np.triu, {"matrix": [(4, 4)], "wide": [(3, 5)], "batched": [(2, 3, 3)]}),
    op("triu(k=1)", lambda x: np.triu(x, 1), {"matrix": [(4, 4)]}),
    op("tril", np.tril, {"matrix": [(4, 4)], "tall": [(5, 3)], "batched": [(2, 3, 3)]}),
    op("tril(k=-1)", lambda x: np.tril(x, -1), {"matrix": [(4, 4)]}),
    op("where(x > 0, x, y)", lambda x, y: np.where(x > 0, x, y),
       {**{k: v for k, v in BI.items() if k != "array-scalar"}}, S(0.2, 1.0)),
    op("where(const mask, x, 2.0)", lambda x: np.where(_mask(x.shape), x, 2.0), VMT),
    op("where(mask, 0.0, x)", lambda x: np.where(x < 0, 0.0, x), UN, S(0.2, 1.0)),
    # -- indexing ----------------------------------------------------------------
    op("take(flat, repeats)", lambda x: np.take(x, [0, 2, 2, 1]), VMT),
    op("take(axis=-1)", lambda x: np.take(x, [[0, 1], [2, 0]], axis=-1), VMT),
    op("sort(axis=-1)", lambda x: np.sort(x, axis=-1), VMT),
    op("diff(n=2, axis=-1)", lambda x: np.diff(x, n=2, axis=-1), VMT),
    op("diff(prepend=0)", lambda x: np.diff(x, axis=0, prepend=0.0), VMT),
    op("sort(axis=None)", lambda x: np.sort(x, axis=None), VMT),
    op("take_along_axis(axis=-1)",
       lambda x: np.take_along_axis(x, _along(x.shape), axis=-1), VMT),
    op("take_along_axis(axis=0)",
       lambda x: np.take_along_axis(x, np.argsort(x, axis=0), axis=0), MT, D),
    op("x[1:3]", lambda x: x[1:3], VMT),
    op("x[::-1]", lambda x: x[::-1], VMT),
    op("x[-1]", lambda x: x[-1], VMT),
    op("x[:, 1]", lambda x: x[:, 1], MT),
    op("x[::2, 1:]", lambda x: x[::2, 1:], MT),
    op("x[None, ..., 0]", lambda x: x[None, ..., 0], VMT),
    op("x[1, 2] (0-d)", lambda x: x[1, 2], MT),
    op("x[()] scalar", lambda x: x[()] * 1.0, {"scalar": [()]}),
    op("x[[0, 2, 2]]", lambda x: x[[0, 2, 2]], V3),
    op("x[[0, 1], [1, 2]]", lambda x: x[[0, 1], [1, 2]], MT),
    op("x[:, [2, 0, 2]]", lambda x: x[:, [2, 0, 2]], MT),
    op("x[int array 2-d]", lambda x: x[np.array([[0, 1], [1, 0]])], VMT),
    op("x[x > 0] (bool)", lambda x: x[x > 0], VMT, S(0.2, 1.0)),
    op("x[const mask]", lambda x: x[_mask(x.shape)], VMT),
    op("x[row mask, 1:]", lambda x: x[np.array([True, False, True]), 1:], M3),
    # -- contractions ------------------------------------------------------------
    op("matmul", np.matmul, {
        "matrix": [(3, 4), (4, 2)], "mat-vec": [(3, 4), (4,)], "vec-mat": [(4,), (4, 2)],
        "vector": [(4,), (4,)], "batched": [(2, 3, 4), (2, 4, 2)],
        "broadcast": [(2, 1, 3, 4), (3, 4, 2)]}),
    op("x @ y", lambda x, y: x @ y, {"matrix": [(3, 4), (4, 2)], "mat-vec": [(3, 4), (4,)]}),
    op("x @ const", lambda x: x @ np.arange(8.0).reshape(4, 2), {"matrix": [(3, 4)]}),
    op("const @ x", lambda x: np.arange(6.0).reshape(2, 3) @ x, {"matrix": [(3, 4)]}),
    op("dot", np.dot, {
        "vector": [(4,), (4,)], "mat-vec": [(3, 4), (4,)], "matrix": [(3, 4), (4, 2)],
        "scalar": [(), (3,)], "tensor": [(2, 3, 4), (4, 2)]}),
    op("x.dot(y)", lambda x, y: x.dot(y), {"matrix": [(3, 4), (4, 2)]}),
    op("inner", np.inner, {"vector": [(4,), (4,)], "matrix": [(2, 4), (3, 4)],
                           "scalar": [(), (3,)]}),
    op("outer", np.outer, {"vector": [(3,), (4,)], "matrix": [(2, 2), (3,)],
                           "scalar": [(), (3,)]}),
    op("tensordot(axes=1)", lambda x, y: np.tensordot(x, y, axes=1), {
        "matrix": [(3, 4), (4, 2)], "tensor": [(2, 3, 4), (4, 2)]}),
    op("tensordot(axes=2)", lambda x, y: np.tensordot(x, y), {
        "matrix": [(3, 4), (3, 4)], "tensor": [(2, 3, 4), (3, 4, 2)]}),
    op("tensordot(axes=([1, 0], [0, 2]))",
       lambda x, y: np.tensordot(x, y, axes=([1, 0], [0, 2])), {"tensor": [(3, 2), (2, 4, 3)]}),
    op("tensordot(axes=0)", lambda x, y: np.tensordot(x, y, axes=0), {"vector": [(2,), (3,)]}),
    op("einsum('ij,jk->ik')", lambda x, y: np.einsum("ij,jk->ik", x, y),
       {"matrix": [(3, 4), (4, 2)]}),
    op("einsum('ij,jk') implicit", lambda x, y: np.einsum("ij,jk", x, y),
       {"matrix": [(3, 4), (4, 2)]}),
    op("einsum('ii->')", lambda x: np.einsum("ii->", x), {"matrix": [(3, 3)]}),
    op("einsum('ii->i')", lambda x: np.einsum("ii->i", x), {"matrix": [(3, 3)]}),
    op("einsum('ij->ji')", lambda x: np.einsum("ij->ji", x), {"matrix": [(3, 4)]}),
    op("einsum('i,i->')", lambda x, y: np.einsum("i,i->", x, y), {"vector": [(4,), (4,)]}),
    op("einsum('ij,ij->i')", lambda x, y: np.einsum("ij,ij->i", x, y),
       {"matrix": [(3, 4), (3, 4)]}),
    op("einsum('bij,bjk->bik')", lambda x, y: np.einsum("bij,bjk->bik", x, y),
       {"batched": [(2, 3, 4), (2, 4, 2)]}),
    op("einsum('...ij,...jk')", lambda x, y: np.einsum("...ij,...jk", x, y),
       {"broadcast": [(2, 3, 4), (4, 2)]}),
    op("einsum('ij,jk,kl->il')", lambda x, y, z: np.einsum("ij,jk,kl->il", x, y, z),
       {"matrix": [(2, 3), (3, 4), (4, 2)]}),
    op("einsum('i,j->ij') outer", lambda x, y: np.einsum("i,j->ij", x, y),
       {"vector": [(3,), (2,)]}),
    op("kron", np.kron, {"vector": [(3,), (2,)], "matrix": [(2, 3), (2, 2)]}),
    op("cross", np.cross, {"vector": [(3,), (3,)], "batched": [(4, 3), (4, 3)],
                           "broadcast": [(4, 3), (3,)]}),
    # -- linear algebra ----------------------------------------------------------
    op("solve", LA.solve, {"vector-b": [(4, 4), (4,)], "matrix-b": [(4, 4), (4, 2)],
                           "batched": [(2, 3, 3), (2, 3, 1)]}, WELL, N),
    op("solve(const A, b)", lambda b: LA.solve(3 * np.eye(4) + np.eye(4, k=1), b),
       {"vector-b": [(4,)], "matrix-b": [(4, 2)]}),
    op("inv", LA.inv, SQ, WELL),
    op("det", LA.det, SQ | {"2x2": [(2, 2)]}, WELL),
    op("slogdet logabsdet", lambda a: LA.slogdet(a)[1], SQ, WELL),
    op("slogdet negative det", lambda a: LA.slogdet(-a[..., ::-1, :])[1], SQ, WELL),
    op("cholesky", lambda a: LA.cholesky(_sym(a)), SQ, SYM),
    op("eigh eigenvalues", lambda a: LA.eigh(_sym(a))[0], SQ, SYM),
    op("eigh eigenvectors (squared)", lambda a: LA.eigh(_sym(a))[1] ** 2, SQ, SYM),
    op("eigh fields", lambda a: LA.eigh(_sym(a)).eigenvalues, {"matrix": [(3, 3)]}, SYM),
    op("qr", lambda a: tuple(LA.qr(a)), {"square": [(4, 4)], "tall": [(5, 3)]}),
    op("svd values", lambda a: LA.svd(a, compute_uv=False),
       {"square": [(4, 4)], "tall": [(5, 3)], "wide": [(3, 5)], "batched": [(2, 3, 4)]}),
    op("svd u**2, s, vt**2", lambda a: _svd_invariant(a),
       {"square": [(4, 4)], "tall": [(5, 3)], "wide": [(3, 5)]}),
    # -- further supported functions (beyond the list) -------------------
    op("pinv", LA.pinv, {"square": [(4, 4)], "tall": [(5, 3)], "wide": [(3, 5)]}, WELL),
    op("eigvalsh", lambda a: LA.eigvalsh(_sym(a)), SQ, SYM),
    op("matrix_power(3)", lambda a: LA.matrix_power(a, 3), SQ),
    op("matrix_power(-2)", lambda a: LA.matrix_power(a, -2), SQ, WELL),
    op("multi_dot", lambda a, b, c: LA.multi_dot([a, b, c]),
       {"matrix": [(2, 3), (3, 4), (4, 2)], "vector-ends": [(3,), (3, 4), (4,)]}),
    op("svdvals", LA.svdvals, {"square": [(4, 4)], "tall": [(5, 3)]}),
    op("matrix_norm", LA.matrix_norm, {"matrix": [(3, 4)], "batched": [(2, 3, 4)]}),
    op("matrix_norm('nuc')", lambda x: LA.matrix_norm(x, ord="nuc"), {"matrix": [(3, 4)]}),
    op("vector_norm", LA.vector_norm, VMT),
    op("vector_norm(ord=3, axis=-1)", lambda x: LA.vector_norm(x, ord=3, axis=-1), MT,
       S(0.2, 2.0)),
    op("matrix_transpose", LA.matrix_transpose, MT),
    op("vdot", np.vdot, {"vector": [(4,), (4,)], "matrix": [(3, 4), (3, 4)]}),
    op("append", np.append, {"vector": [(3,), (2,)], "matrix": [(2, 3), (4,)]}),
    op("append(axis=0)", lambda x, y: np.append(x, y, axis=0),
       {"matrix": [(2, 3), (1, 3)]}),
    op("array_split(3)", lambda x: np.array_split(x, 3), {"vector": [(7,)],
                                                         "matrix": [(4, 2)]}),
    op("hsplit", lambda x: np.hsplit(x, 2), {"matrix": [(3, 4)]}),
    op("vsplit", lambda x: np.vsplit(x, [1]), {"matrix": [(3, 4)]}),
    op("dsplit", lambda x: np.dsplit(x, 2), {"tensor3": [(2, 3, 4)]}),
    op("atleast_1d", np.atleast_1d, {"scalar": [()], "vector": [(3,)]}),
    op("atleast_2d", np.atleast_2d, {"scalar": [()], "vector": [(3,)]}),
    op("atleast_3d", np.atleast_3d, {"vector": [(3,)], "matrix": [(3, 4)]}),
    op("average", np.average, VMT),
    op("average(axis=0, weights)", lambda x, w: np.average(x, axis=0, weights=w),
       {"matrix": [(3, 4), (3,)]}, N, POS),
    op("column_stack", lambda x, y: np.column_stack([x, y]),
       {"vector": [(3,), (3,)], "matrix": [(3, 2), (3,)]}),
    op("dstack", lambda x, y: np.dstack([x, y]), {"matrix": [(3, 4), (3, 4)]}),
    op("compress", lambda x: np.compress([True, False, True], x, axis=0), M3),
    op("extract", lambda x: np.extract(_mask(x.shape), x), VMT),
    op("delete(1)", lambda x: np.delete(x, 1), VMT),
    op("delete([0, 2], axis=1)", lambda x: np.delete(x, [0, 2], axis=1), MT),
    op("diagflat", np.diagflat, {"vector": [(3,)], "matrix": [(2, 2)]}),
    op("fliplr", np.fliplr, MT),
    op("flipud", np.flipud, VMT),
    op("rot90", np.rot90, MT),
    op("rot90(2, axes=(1, 2))", lambda x: np.rot90(x, 2, axes=(1, 2)), {"tensor3": [(2, 3, 4)]}),
    op("ptp", np.ptp, VMT, D),
    op("ptp(axis=1)", lambda x: np.ptp(x, axis=1), MT, D),
    op("nansum", lambda x: np.nansum(np.where(_mask(x.shape), x, np.nan)), VMT),
    op("nanmean(axis=0)", lambda x: np.nanmean(np.where(_mask(x.shape), x, np.nan), axis=0),
       {"vector": [(5,)], "matrix": [(3, 4)]}),
    op("nanmax", lambda x: np.nanmax(np.where(_mask(x.shape), x, np.nan)), VMT, D),
    op("nanmin(axis=-1)", lambda x: np.nanmin(np.where(_mask(x.shape), x, np.nan), axis=-1),
       {"matrix": [(3, 4)]}, D),
    op("nanprod", lambda x: np.nanprod(np.where(_mask(x.shape), x, np.nan)), VMT,
       S(0.5, 1.5)),
    op("broadcast_arrays", lambda x, y: np.broadcast_arrays(x, y), BI),
    op("add.reduce", lambda x: np.add.reduce(x, axis=0), VMT),
    op("add.accumulate", lambda x: np.add.accumulate(x, axis=-1), VMT),
    op("multiply.reduce", lambda x: np.multiply.reduce(x, axis=0), VMT, S(0.5, 1.5)),
    op("multiply.accumulate", lambda x: np.multiply.accumulate(x), VMT, S(0.5, 1.5)),
    op("maximum.reduce", lambda x: np.maximum.reduce(x, axis=-1), VMT, D),
    op("minimum.reduce", lambda x: np.minimum.reduce(x), VMT, D),
    op("fmax.reduce", lambda x: np.fmax.reduce(x, axis=0), VMT, D),
    op("fmin.reduce", lambda x: np.fmin.reduce(x, axis=1), MT, D),
    op("x.squeeze().ravel()", lambda x: x.squeeze().ravel(), {"unit-axes": [(3, 1, 2)]}),
    # stop_gradient's derivative is 0 by decree, so the row keeps only a part
    # whose true derivative is also 0; test_stop_gradient_cuts checks the cut.
    op("stop_gradient", lambda x: np.sin(x) + (da.stop_gradient(x) - da.stop_gradient(x)), UN),
]


def _svd_invariant(a):
    # Column sign flips of u (with the matching row of vt) leave these unchanged.
    u, s, vt = LA.svd(a, full_matrices=False)
    return u ** 2, s, vt ** 2


# -- complex values (real inputs, complex intermediates; h11b) -----------------
ROWS += [
    op("real(exp(1j x))", lambda x: np.real(np.exp(1j * x)), UN),
    op("imag(x * (1 + 2j))**2", lambda x: np.imag(x * (1.0 + 2.0j)) ** 2, UN),
    op("conj(z) * z", lambda x, y: np.real(np.conj(x + 1j * y) * (x + 1j * y) ** 2), BI),
    op("abs/angle of complex", lambda x, y: np.abs(x + 1j * y) * np.angle(x + 1j * y),
       BI, S(0.3, 2.0)),
    op("z.real, z.imag, z.conj()", lambda x: (x * 1j + x * x).conj().imag
       + (x * (2 - 1j)).real, UN),
    op("astype(complex) -> real", lambda x: np.real(x.astype(np.complex128) * (1 + 1j)), UN),
    op("norm/var of complex", lambda x, y: np.linalg.norm(x + 1j * y) + np.var(x * y + 1j * x),
       {"vector": [(5,), (5,)], "matrix": [(3, 4), (3, 4)]}),
]

# -- numpy.fft (h11b): real-valued views of the complex results ---------------
FFT = np.fft
ROWS += [
    op("fft (real, imag)", lambda x, y: (FFT.fft(x + 1j * y).real, FFT.fft(x * y).imag),
       {k: v for k, v in BI.items() if k != "scalar"}),
    op("ifft(n=6, norm='ortho')", lambda x: np.abs(FFT.ifft(x, n=6, norm="ortho")), VMT),
    op("fft2 / ifft2", lambda x, y: np.real(FFT.fft2(x + 1j * y) * FFT.ifft2(x * y)),
       {"matrix": [(3, 4), (3, 4)], "tensor3": [(2, 3, 4), (2, 3, 4)]}),
    op("fftn(s, axes) / ifftn", lambda x: np.imag(FFT.fftn(x, s=(3, 2), axes=(0, -1))
                                                  + FFT.ifftn(x * x)[:3, ..., :2]),
       {"matrix": [(3, 4)], "tensor3": [(3, 2, 4)]}),
    op("rfft / irfft", lambda x: FFT.irfft(FFT.rfft(x) * (1 + 0.5j) + 1j), VMT),
    op("irfft(n=5, norm='forward')", lambda x, y: FFT.irfft(x + 1j * y, n=5, norm="forward"),
       {"vector": [(4,), (4,)], "matrix": [(3, 4), (3, 4)]}),
    op("rfft2 / irfft2", lambda x: FFT.irfft2(FFT.rfft2(x) ** 2, s=(3, 5)), MT),
    op("rfftn / irfftn(axes)", lambda x: FFT.irfftn(FFT.rfftn(x, axes=(0,)) * 1j, axes=(0,)),
       MT),
    op("fftshift / ifftshift", lambda x: FFT.fftshift(x) * FFT.ifftshift(x * x, axes=-1), VMT),
]

# -- more NumPy functions as compositions (h11b, dualad/rules/misc.py) ----------
_XP = np.linspace(-1.2, 1.2, 5)
ROWS += [
    op("rad2deg/degrees/deg2rad/radians",
       lambda x: np.rad2deg(x) + np.degrees(x * x) + np.deg2rad(x) * np.radians(x), UN),
    op("fabs", np.fabs, UN, S(0.2, 2.0)),
    op("sinc", np.sinc, UN, U(-1.5, 1.5)),
    op("sinc near 0", lambda x: np.sinc(x * 1e-4), UN),
    op("logaddexp2", np.logaddexp2, BI),
    op("linspace(traced ends)", lambda a, b: np.linspace(a, b, 5, axis=-1),
       {"scalar": [(), ()], "vector": [(3,), (3,)]}),
    op("linspace(endpoint=False, retstep)", lambda a, b: np.linspace(a, b, 4, False, True),
       {"scalar": [(), ()]}),
    op("gradient", np.gradient, {"vector": [(6,)], "matrix": [(3, 4)]}),
    op("gradient(h, edge_order=2, axis)", lambda f: np.gradient(f, 0.3, axis=-1, edge_order=2),
       VMT),
    op("nan_to_num", lambda x: np.nan_to_num(np.where(x > 0, x, np.nan) * 2.0, nan=-1.0), UN,
       S(0.5, 2.0)),
    op("pad(constant)", lambda x: np.pad(x, ((1, 2),) * x.ndim, constant_values=1.5), VMT),
    op("pad(edge/reflect/symmetric/wrap)", lambda x: (
        np.pad(x, 2, mode="edge"), np.pad(x, (1, 2), mode="reflect"),
        np.pad(x, 3, mode="symmetric"), np.pad(x, (4, 1), mode="wrap")), VMT),
    op("partition", lambda x: np.partition(x, 1, axis=-1), VMT, D),
    op("rollaxis", lambda x: np.rollaxis(x, 2, 0), {"tensor3": [(2, 3, 4)]}),
    op("select", lambda x, y: np.select([x > 0.5, x < 0], [x * y, y * y], default=x),
       {"vector": [(5,), (5,)], "matrix": [(3, 4), (3, 4)]}, S(0.1, 1.0)),
    op("interp(x, xp, fp)", lambda x, fp: np.interp(x, _XP, fp),
       {"vector": [(4,), (5,)]}, U(-1.5, 1.5), N),
    op("polyval(p, x)", np.polyval, {"vector": [(3,), (4,)], "matrix": [(4,), (2, 3)]}),
    op("piecewise", lambda x: np.piecewise(x, [x < 0, x > 0.5], [np.sin, lambda v: v * v, 0.5]),
       UN, S(0.1, 1.0)),
    op("meshgrid", lambda x, y: np.meshgrid(x, y), {"vector": [(3,), (4,)]}),
    op("eig / eigvals (real and complex spectra)", lambda a: _eig_views(a),
       {"real-spectrum": [(3, 3)], "batched": [(2, 3, 3)]}, SYM),
    op("eig (complex pairs)", lambda a: _eig_views(a), {"matrix": [(3, 3)], "4x4": [(4, 4)]}),
]

# -- scipy.special (h11b; registered lazily, checked here when SciPy exists) --
try:
    import scipy.special as _sc
except ImportError:                                   # pragma: no cover
    _sc = None
if _sc is not None:
    _P01 = U(0.1, 0.9)
    ROWS += [
        op("scipy erf/erfc/ndtr/expit", lambda x: (_sc.erf(x), _sc.erfc(x), _sc.ndtr(x),
                                                   _sc.expit(x)), UN),
        op("scipy erfinv/erfcinv/ndtri/logit", lambda u: (
            _sc.erfinv(u), _sc.erfcinv(u), _sc.ndtri(u), _sc.logit(u)), UN, _P01),
        op("scipy gammaln/digamma/gamma", lambda x: (_sc.gammaln(x), _sc.digamma(x),
                                                     _sc.gamma(x)), UN, POS),
        op("scipy log_ndtr", _sc.log_ndtr, UN, U(-4.0, 2.0)),
        op("scipy xlogy/xlog1py/betaln", lambda x, y: (_sc.xlogy(x, y), _sc.xlog1py(x, y),
                                                       _sc.betaln(x, y)), BI, POS),
        op("scipy i0/i0e/i1/i1e/j0/j1", lambda x: (_sc.i0(x), _sc.i0e(x), _sc.i1(x),
                                                   _sc.i1e(x), _sc.j0(x), _sc.j1(x)), UN,
           S(0.2, 2.0)),
        op("scipy y0/y1/jv/yv/iv/kv/ive/kve", lambda x: (
            _sc.y0(x), _sc.y1(x), _sc.jv(1.5, x), _sc.yv(0.5, x), _sc.iv(2.0, x),
            _sc.kv(0.5, x), _sc.ive(1.0, x), _sc.kve(1.0, x)), UN, POS),
        op("scipy zeta(s, q)", lambda q: _sc.zeta(3.0, q), UN, POS),
    ]


def _eig_views(a):
    # Real-valued views of both outputs (complex when the spectrum is).
    w, v = np.linalg.eig(a)
    c = np.linspace(0.5, 1.5, w.shape[-1]) * (1 - 0.5j)
    return np.real(w * c) + np.imag(np.linalg.eigvals(a)) ** 2, np.real(v * c) + np.imag(v) ** 2

CASES = [(spec, fam) for spec in ROWS for fam in spec.families]
IDS = [f"{spec.name}[{fam}]" for spec, fam in CASES]


# ============================================================================
# the primitive spy: which registry entries each row binds
# ============================================================================
_COVERAGE: dict = {}      # (row name, family) -> set of primitive names


@contextmanager
def record_primitives():
    """Record every primitive bound (through ``bind``) or run (``impl``)."""
    seen: set = set()
    saved_impl = {}
    real_bind = primitive.bind

    def spy_bind(prim, *args, **params):
        seen.add(prim.name)
        return real_bind(prim, *args, **params)

    def wrap(name, impl):
        def spy_impl(*args, **params):
            seen.add(name)
            return impl(*args, **params)
        return spy_impl

    for name, prim in list(primitive.registry.items()):
        saved_impl[name] = prim.impl
        prim.impl = wrap(name, prim.impl)
    primitive.bind = spy_bind
    try:
        yield seen
    finally:
        primitive.bind = real_bind
        for name, impl in saved_impl.items():
            primitive.registry[name].impl = impl


def _leaves(tree):
    return tree_flatten(tree)[0]


def _check_primal(spec, args):
    """The traced primal equals NumPy's own result, as plain arrays."""
    want = _leaves(spec.fn(*args))
    got_fwd = _leaves(da.jvp(spec.fn, args, tuple(np.ones_like(a) for a in args))[0])
    got_rev = _leaves(da.vjp(spec.fn, *args)[0])
    for got, how in ((got_fwd, "jvp"), (got_rev, "vjp")):
        assert len(got) == len(want), f"{how}: {len(got)} outputs, numpy gives {len(want)}"
        for g, w in zip(got, want, strict=True):
            assert not isinstance(g, Tracer), f"{how} returned a tracer"
            assert np.shape(g) == np.shape(w), f"{how}: shape {np.shape(g)} != {np.shape(w)}"
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12)


def _run_case(spec, family):
    args = spec.args(family)
    with record_primitives() as seen:
        try:
            _check_primal(spec, args)
            check_grads(spec.fn, args, order=2, modes=("fwd", "rev"))
        finally:
            _COVERAGE[(spec.name, family)] = set(seen)


@pytest.mark.parametrize("spec, family", CASES, ids=IDS)
def test_op(spec: OpSpec, family: str) -> None:
    _run_case(spec, family)


def test_row_names_unique() -> None:
    names = [r.name for r in ROWS]
    assert len(names) == len(set(names)), "duplicate row names in ROWS"


# ============================================================================
# meta-tests: the registry is complete and every entry has a row
# ============================================================================
def _builtin_primitive_names() -> list[str]:
    """Registry names after importing dualad and every submodule it lists (in a
    fresh interpreter, so primitives that other tests define through
    custom_jvp/custom_vjp do not count)."""
    code = (
        "import importlib, json, dualad\n"
        "from dualad.core.registry import registry\n"
        "mods = sorted(set(dualad._LAZY.values()) | "
        "{'dualad.' + m for m in dualad._SUBMODULES})\n"
        "for m in mods:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if e.name != m:\n"
        "            raise\n"
        "print(json.dumps(sorted(registry)))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, f"importing dualad's modules failed:\n{res.stderr}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_no_missing_rules() -> None:
    for m in sorted(set(da._LAZY.values())):
        try:
            importlib.import_module(m)
        except ModuleNotFoundError as e:
            if e.name != m:
                raise
    assert primitive.missing_rules() == []


def test_every_primitive_has_a_row() -> None:
    builtin = _builtin_primitive_names()
    for spec, family in CASES:
        if (spec.name, family) not in _COVERAGE:     # run alone / filtered: fill in
            try:
                _run_case(spec, family)
            except Exception:                          # its own test reports it
                pass
    covered = set().union(*_COVERAGE.values()) if _COVERAGE else set()
    uncovered = sorted(set(builtin) - covered)
    assert not uncovered, (
        f"registry primitives exercised by no row of the op table: {uncovered}. "
        "Add a row to ROWS in tests/test_op_table.py.")


def test_spy_sees_rule_only_primitives() -> None:
    """The spy records primitives bound inside derivative rules too (e.g. a
    transpose rule's own primitive), not only those the user's code calls."""
    with record_primitives() as seen:
        da.grad(lambda x: np.sum(x, axis=0).sum())(np.ones((2, 3)))
    assert {"sum", "broadcast_to"} <= seen


# ============================================================================
# special points that check_grads cannot probe (one-sided or tied)
# ============================================================================
@pytest.mark.parametrize("reduce", [np.max, np.min, np.amax, np.amin],
                         ids=["max", "min", "amax", "amin"])
def test_reduction_ties_share_the_gradient(reduce) -> None:
    x = np.array([1.0, 3.0, -2.0, 3.0]) * (1 if reduce in (np.max, np.amax) else -1)
    for g in (da.grad(reduce)(x), da.jacfwd(reduce)(x), da.jacrev(reduce)(x)):
        g = np.asarray(g)
        assert np.isclose(g.sum(), 1.0), g
        assert np.all(g >= 0) and g[0] == 0 and g[2] == 0, g


def test_maximum_tie_is_split_evenly() -> None:
    g = da.grad(lambda x, y: np.maximum(x, y), argnums=(0, 1))(1.0, 1.0)
    assert np.allclose(g, (0.5, 0.5))


def test_fmax_fmin_ignore_nan() -> None:
    x = np.array([1.0, 2.0])
    nan = np.array([np.nan, 0.5])
    assert np.allclose(da.grad(lambda v: np.fmax(v, nan).sum())(x), [1.0, 1.0])
    assert np.allclose(da.grad(lambda v: np.fmin(v, nan).sum())(x), [1.0, 0.0])


def test_stop_gradient_cuts() -> None:
    x = np.array([0.5, -1.5, 2.0])
    f = lambda v: np.sum(v * da.stop_gradient(v) ** 2)        # d/dv = v**2 (not 3 v**2)
    np.testing.assert_allclose(da.grad(f)(x), x ** 2)
    np.testing.assert_allclose(da.jvp(f, (x,), (np.ones(3),))[1], np.sum(x ** 2))
    np.testing.assert_allclose(da.jacfwd(da.grad(f))(x), np.zeros((3, 3)))
    np.testing.assert_allclose(da.jacrev(da.grad(f))(x), np.zeros((3, 3)))


# ============================================================================
# non-differentiable functions: plain arrays, zero derivative
# ============================================================================
NONDIFF = [
    ("sign", np.sign), ("floor", np.floor), ("ceil", np.ceil), ("round", np.round),
    ("around", np.around), ("rint", np.rint), ("trunc", np.trunc),
    ("x > 0", lambda x: x > 0), ("x >= 0.4", lambda x: x >= 0.4), ("x < 0", lambda x: x < 0),
    ("x <= 0", lambda x: x <= 0), ("x == x", lambda x: x == x), ("x != 0", lambda x: x != 0),
    ("greater", lambda x: np.greater(x, 0.1)), ("less_equal", lambda x: np.less_equal(x, 0.0)),
    ("equal", lambda x: np.equal(x, 0.4)), ("isfinite", np.isfinite),
]


@pytest.mark.parametrize("fn", [f for _, f in NONDIFF], ids=[n for n, _ in NONDIFF])
def test_nondiff_returns_plain_array(fn) -> None:
    x = np.array([-1.7, -0.2, 0.4, 2.6])
    want = fn(x)
    kinds = []

    def f(z):
        r = fn(z)
        kinds.append(type(r))
        np.testing.assert_array_equal(r, want)
        return z * r

    diag = np.diag(want.astype(np.float64))
    np.testing.assert_allclose(da.jacfwd(f)(x), diag)
    np.testing.assert_allclose(da.jacrev(f)(x), diag)
    np.testing.assert_allclose(da.grad(lambda z: f(z).sum())(x), np.diag(diag))
    assert kinds and all(issubclass(k, (np.ndarray, np.generic)) for k in kinds), kinds
    _, t = da.jvp(lambda z: fn(z) * 1.0, (x,), (np.ones(4),))
    np.testing.assert_array_equal(t, np.zeros(4))
