"""Layer 1, the solvers of one block's scale equation, behind one registry (``verify.solvers.registry``).

They import only from ``verify.core``.
"""
