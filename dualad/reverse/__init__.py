"""Reverse mode: the tape, vjp, grad, jacrev, tape tensors."""
