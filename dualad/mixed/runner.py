"""The chunk runner: batched passes over ranges of directions, locally (with
an optional progress bar) or farmed out through any
``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``, a Dask client's
``client.get_executor()``, Ray's executor...).

A *task* is a callable ``task(start, stop) -> piece`` computing the batched
pass for directions ``start:stop``; :func:`run_chunks` calls it for every
chunk and returns the pieces in order. For an executor the task is
serialised once with ``cloudpickle`` (lambdas and closures travel by value)
and each chunk is a ``submit`` of a small module-level function, so any
executor that can pickle plain functions and bytes works.

The chunked transforms built on it live in :mod:`dualad.mixed.chunked`;
recording a pass once and replaying it in :mod:`dualad.mixed.replay`.

Example::

    >>> run_chunks(lambda a, b: list(range(a, b)), 5, 2)
    [[0, 1], [2, 3], [4]]
"""
from __future__ import annotations

import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ExecOptions", "run_chunks", "chunk_ranges", "Progress"]


# ============================================================================
# execution options: one frozen object passed whole
# ============================================================================
@dataclass(frozen=True)
class ExecOptions:
    """How a Jacobian/Hessian/HVP runs (not *what* it computes): ``chunk``
    (directions per batched pass; ``None``: what the memory budget allows),
    ``progress`` (a bar over the chunks), ``executor`` (any
    ``concurrent.futures.Executor``), ``memory_budget`` (bytes or text such as
    ``"2GB"`` for this call; ``None``: the context's or process default).
    Passed whole from the public transforms down to the chunk runner.

    >>> opts = ExecOptions(chunk=2)
    >>> opts.chunked, opts.run(lambda a, b: b - a, 5, "demo")
    (False, [2, 2, 1])
    """

    chunk: int | None = None
    progress: bool = False
    executor: Any = None
    memory_budget: Any = None

    @property
    def chunked(self) -> bool:
        """True when the caller asked for chunk-level control (a bar or an
        executor): only the modes that run in chunks can honour it."""
        return self.progress or self.executor is not None

    def with_chunk(self, chunk: int | None) -> ExecOptions:
        """These options with ``chunk`` filled in where the caller left it."""
        if self.chunk is not None or chunk is None:
            return self
        # (the constructor, not dataclasses.replace: this runs on every call)
        return ExecOptions(chunk, self.progress, self.executor, self.memory_budget)

    def run(self, task: Callable, n: int, desc: str, default_chunk: int | None = None) -> list:
        """:func:`run_chunks` under these options (``chunk``, else
        ``default_chunk``, else all ``n`` directions in one pass)."""
        chunk = self.chunk or default_chunk or max(1, n)
        return run_chunks(task, n, chunk, progress=self.progress, executor=self.executor,
                          desc=desc)


# ============================================================================
# chunk ranges
# ============================================================================
def chunk_ranges(n: int, chunk: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in steps of ``chunk``.

    >>> chunk_ranges(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    chunk = max(1, int(chunk))
    return [(s, min(s + chunk, n)) for s in range(0, max(n, 0), chunk)] or [(0, 0)]


# ============================================================================
# progress: tqdm when installed, a plain text line otherwise
# ============================================================================
class Progress:
    """A progress bar over ``total`` chunks: ``tqdm`` if importable, else a
    text fallback writing ``desc: k/total chunks`` lines to ``file``
    (stderr). ``enabled=False`` makes every method a no-op.

    >>> with Progress(2, "demo", enabled=False) as bar:
    ...     bar.update()
    """

    def __init__(self, total: int, desc: str = "", *, enabled: bool = True, file=None):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.file = file if file is not None else sys.stderr
        self.done = 0
        self._bar = None
        self._t0 = time.perf_counter()
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._write(0)
            else:
                self._bar = tqdm(total=total, desc=desc, unit="chunk", file=self.file,
                                 leave=True)

    def _write(self, done: int) -> None:
        elapsed = time.perf_counter() - self._t0
        print(f"{self.desc}: {done}/{self.total} chunks ({elapsed:.1f} s)", file=self.file,
              flush=True)

    def update(self, k: int = 1) -> None:
        if not self.enabled:
            return
        self.done += k
        if self._bar is not None:
            self._bar.update(k)
        else:
            self._write(self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


# ============================================================================
# running the chunks
# ============================================================================
def _dumps(task: Callable) -> bytes:
    """The task serialised by value (closures, lambdas and all)."""
    try:
        import cloudpickle
    except ImportError as e:            # pragma: no cover - depends on the install
        raise ImportError(
            "executor= needs cloudpickle to ship the function to the workers: "
            "pip install cloudpickle (or the 'distributed' extra)") from e
    return cloudpickle.dumps(task)


def _run_payload(payload: bytes, start: int, stop: int):
    """Worker side: rebuild the task and run one chunk (module level, so the
    executor pickles it by reference)."""
    import dualad  # noqa: F401  (fills the registry in a fresh worker)
    task = pickle.loads(payload)
    return task(start, stop)


def run_chunks(task: Callable, n: int, chunk: int, *, progress: bool = False,
               executor=None, desc: str = "chunks") -> list:
    """Run ``task(start, stop)`` over ``range(n)`` in chunks of ``chunk``;
    return the pieces in order.

    ``executor``: any object with the ``concurrent.futures.Executor``
    ``submit`` method; chunks are submitted at once and collected in order.
    ``progress=True`` shows a bar (tqdm, or plain text without it).

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as ex:
    ...     run_chunks(lambda a, b: b - a, 7, 3, executor=ex)
    [3, 3, 1]
    """
    ranges = chunk_ranges(n, chunk)
    pieces = []
    with Progress(len(ranges), desc, enabled=progress) as bar:
        if executor is None or len(ranges) == 0:
            for start, stop in ranges:
                pieces.append(task(start, stop))
                bar.update()
            return pieces
        payload = _dumps(task)
        futures = [executor.submit(_run_payload, payload, start, stop) for start, stop in ranges]
        for fut in futures:
            pieces.append(fut.result())
            bar.update()
    return pieces
