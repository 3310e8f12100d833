"""core: what every other room stands on.

The primitive registry, levels (the one authority on nesting), the symbolic
zero, pytrees, the array backend (NumPy or CuPy), argument checks and the
NumPy dispatch that routes user calls into the registry.

May import: nothing else of dualad (it is the bottom layer).
"""
