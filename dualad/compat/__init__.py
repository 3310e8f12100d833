"""compat: the seed surfaces.

MindSpore-style ``GradOperation``/``Jvp``/``Vjp`` and the ``weights=``
binding, amp (loss scaling, ``all_finite``, ``clip_by_global_norm``),
``Parameter``/``Module``. Only the public facades import it.

May import: core, forward, reverse, mixed.
"""
