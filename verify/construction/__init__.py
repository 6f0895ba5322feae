"""Layer 2, the construction: one loop over the blocks that solves, shifts, certifies and returns.

It imports from ``verify.core`` and ``verify.solvers`` only.
"""
