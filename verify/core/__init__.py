"""Layer 0, the numpy core: networks and their channels, domains, the scale equation of a block, the
bias shift and interval bounds (one formula each, over an `verify.core.arithmetic.Arithmetic`), the
certificate's records, feasibility, errors, numerics and tolerances.

Nothing here imports from any other layer of ``verify``. The layers, bottom to top:
``core`` → ``solvers`` → ``construction`` → the public API (``verify``, ``verify.nn``) → ``job`` → ``cli``.
"""
