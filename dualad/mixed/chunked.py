"""Chunked transforms: dense Jacobians, Hessians and batched HVPs as passes
over chunks of identity directions, run by :func:`dualad.mixed.runner.run_chunks`
(locally, with a progress bar, or through an executor). Each takes the
execution options whole (:class:`dualad.mixed.options.ExecOptions`).

Example::

    >>> import numpy as np
    >>> jacobian_fwd_chunks(lambda x: x * x, (np.array([1.0, 2.0]),), 0, 1)
    array([[2., 0.],
           [0., 4.]])
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dualad.core.args import at_positions, identity_rows, materialize, size_of
from dualad.core.registry import shape_of
from dualad.forward.api import assemble, jvp_flat
from dualad.mixed.runner import ExecOptions
from dualad.reverse.api import grad, vjp

__all__ = ["jacobian_fwd_chunks", "jacobian_rev_chunks", "hessian_fwd_rev_chunks",
           "hvp_chunks"]


_DEFAULT = ExecOptions()


def _cat(pieces: list):
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)


def jacobian_fwd_chunks(fn: Callable, args: tuple, pos: int, chunk: int | None = None,
                        options: ExecOptions = _DEFAULT):
    """Forward-mode Jacobian of ``fn`` w.r.t. ``args[pos]`` in chunks of
    ``options.chunk`` (else ``chunk``) directions, ``out.shape + in.shape``
    (pytree outputs too).

    >>> import numpy as np
    >>> jacobian_fwd_chunks(lambda x: x * x, (np.array([1.0, 2.0]),), 0, 1)
    array([[2., 0.],
           [0., 4.]])
    """
    x = args[pos]
    f = at_positions(fn, args, (pos,))

    def task(start: int, stop: int):
        return jvp_flat(f, (x,), (identity_rows(x, start, stop),),
                        lead_shape=(stop - start,))[1]

    pieces = options.run(task, size_of(x), "jacobian fwd", chunk)
    return assemble(pieces, None, shape_of(x))


def jacobian_rev_chunks(fn: Callable, args: tuple, pos: int, chunk: int | None = None,
                        options: ExecOptions = _DEFAULT):
    """Reverse-mode Jacobian (one array output) in chunks of output rows,
    ``out.shape + in.shape``. Locally the tape is recorded once; each
    executor task records its own.

    >>> import numpy as np
    >>> jacobian_rev_chunks(lambda x: x[::-1] * 2.0, (np.array([1.0, 2.0]),), 0, 1)
    array([[0., 2.],
           [2., 0.]])
    """
    x = args[pos]
    f = at_positions(fn, args, (pos,))
    out, pull = vjp(f, x)
    if not hasattr(out, "shape"):
        raise ValueError("a reverse-mode Jacobian needs a function with a single array output")
    local = options.executor is None

    def task(start: int, stop: int):
        p = pull if local else vjp(f, x)[1]
        return p(identity_rows(out, start, stop), batched=True)[0]

    pieces = options.run(task, size_of(out), "jacobian rev", chunk)
    return np.reshape(_cat(pieces), shape_of(out) + shape_of(x))


def hessian_fwd_rev_chunks(f: Callable, args: tuple, positions: tuple,
                           default_chunk: Callable = lambda n: n,
                           options: ExecOptions = _DEFAULT) -> list:
    """Batched forward-over-reverse Hessian blocks ``blocks[i][j]`` shaped
    ``(n_i, n_j)``: for each input ``j``, chunks of identity tangents pushed
    through the reverse gradient (one jvp per chunk; ``options.chunk``, else
    ``default_chunk(n)`` directions).

    >>> import numpy as np
    >>> hessian_fwd_rev_chunks(lambda x: np.sum(x ** 3), (np.array([1.0, 2.0]),), (0,),
    ...                        options=ExecOptions(chunk=1))[0][0]
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    g = grad(f, positions)
    m = len(positions)
    blocks = [[None] * m for _ in range(m)]
    for j, pj in enumerate(positions):
        x = args[pj]
        n = size_of(x)
        g_j = at_positions(g, args, (pj,))

        def task(start: int, stop: int, g_j=g_j, x=x):
            _, t = jvp_flat(g_j, (x,), (identity_rows(x, start, stop),),
                            lead_shape=(stop - start,))
            return [materialize(t[i], args[positions[i]], (stop - start,)) for i in range(m)]

        pieces = options.run(task, n, "hessian fwd-rev", default_chunk(n))
        for i in range(m):
            # Row b of the stacked tangents is d g_i / d x_j[b]: block (i, j)
            # is its transpose.
            col = np.reshape(_cat([p[i] for p in pieces]), (n, size_of(args[positions[i]])))
            blocks[i][j] = np.transpose(col)
    return blocks


def hvp_chunks(f: Callable, primals: tuple, tangents: tuple, n_dirs: int,
               options: ExecOptions = _DEFAULT) -> tuple:
    """``(grad, H @ tangents)`` for tangents with a leading batch axis of
    ``n_dirs`` directions (every leaf), in chunks of ``options.chunk``
    directions (all at once when ``None``).

    >>> import numpy as np
    >>> g, hv = hvp_chunks(lambda x: np.sum(x ** 3), (np.array([1.0, 2.0]),),
    ...                    (np.eye(2),), 2, ExecOptions(chunk=1))
    >>> hv[0]
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    g = grad(f, tuple(range(len(primals))))

    def task(start: int, stop: int):
        out, t = jvp_flat(g, primals, tuple(v[start:stop] for v in tangents),
                          lead_shape=(stop - start,))
        return out, [materialize(ti, p, (stop - start,)) for ti, p in zip(t, primals)]

    pieces = options.run(task, n_dirs, "hvp")
    grads = tuple(pieces[0][0])
    return grads, tuple(_cat([p[1][i] for p in pieces]) for i in range(len(primals)))
