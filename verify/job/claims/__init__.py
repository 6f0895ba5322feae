"""The claims of the verification job, one module each; importing this package registers them all.

Each module declares its family with `verify.job.registry.register`: name pattern, statement,
quick and full sizes, summary line, tables, markdown section and figures. Adding a claim is one
new module here and one import line below; nothing else changes.
"""

# ruff: noqa: F401  (each import registers its claim family)
import verify.job.claims.approx_digits
import verify.job.claims.approx_frontier
import verify.job.claims.baseline
import verify.job.claims.certificate_exact
import verify.job.claims.certificate_sound
import verify.job.claims.certificate_tightness
import verify.job.claims.conv
import verify.job.claims.exact
import verify.job.claims.graph_classes
import verify.job.claims.graph_resnet
import verify.job.claims.paired
import verify.job.claims.properties
import verify.job.claims.routes
import verify.job.claims.solvers_speed
import verify.job.claims.sparse_case3
import verify.job.claims.sparse_decision
import verify.job.claims.sparse_map
import verify.job.claims.sparse_phase
import verify.job.claims.sparse_rank
import verify.job.claims.threshold
import verify.job.claims.tight
import verify.job.claims.tradeoff
