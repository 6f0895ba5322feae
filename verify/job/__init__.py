"""Layer 4, the verification job behind ``python -m verify``: every claim checked numerically.

It uses the public API (``verify``, ``verify.nn``) and the layers below; nothing below imports it.
Its modules, imports pointing down this list:

- `verify.job.claim` (the `Claim` record) ← `verify.job.registry` (what a claim family declares)
  ← `verify.job.config` (the `Config`: grid, domains, sizes);
- `verify.job.claims` (one module per claim family, each registering itself), with
  `verify.job.agreement` (fresh-point errors), `verify.job.figures` (PNGs), `verify.job.progress`
  and `verify.job.sweeps` (where cases run);
- `verify.job.runner` (runs the selected claims);
- `verify.job.render_console`, `verify.job.render_markdown`, `verify.job.render_json` (driven by the
  registry only) and `verify.job.report` (writes ``verify.md``, ``verify.json``, ``figures/``, with
  `verify.job.environment`).
"""
