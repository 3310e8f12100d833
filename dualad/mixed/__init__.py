"""mixed: the mixed-mode layer.

The planner (a pure cost model), sparsity detection, coloring, the chunk
runner and executors, per-function caches and structure fingerprints, the
replay of recorded passes, and the composed transforms (``jacobian``,
``hessian`` in every mode, ``hvp``). It decides every fallback; the
interpreters below only answer "can" or "cannot".

Modules, in import order: budget, cache (every cache, bounded),
fingerprint, runner (ExecOptions, chunk runner), replay (record/replay and its
safety contract), sparsity (detection), coloring (algorithms), patterns
(cached patterns and colorings), compressed (colored evaluation), chunked
(chunked dense transforms), planner, transforms.

May import: core, rules, forward, reverse, structured, kernels.
"""
