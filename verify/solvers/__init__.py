"""Layer 1, the solvers of one block's scale equation, behind one registry (``verify.solvers.registry``).

Each solver takes a `verify.core.scale_equation.ScaleEquation`: ``direct``, ``lstsq``, ``iterative``
(scipy or torch LSMR), ``minimal``, the convex programs and ``exact``, one module each; the condition
estimates they report (``verify.solvers.condition``) and the time estimates ``auto`` chooses by
(``verify.solvers.planning``). They import only from ``verify.core`` and from this layer.
"""
