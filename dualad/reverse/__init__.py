"""Reverse mode: the tape (TapeLevel), vjp, grad, jacrev, tape tensors.

Positions only: MindSpore's ``weights=`` binding lives in compat/.

May import: core, forward.
"""
