"""Layer 0, the numpy core: networks, domains, the scale equation, bias shift, certificate, feasibility.

Nothing here imports from any other layer of ``verify``. The layers, bottom to top:
``core`` → ``solvers`` → ``construction`` → the public API (``verify``, ``verify.nn``) → ``job`` → ``cli``.
"""
