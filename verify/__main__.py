"""``python -m verify``: the verification job (and ``python -m verify reconstruct``); see `verify.cli.main`."""

from __future__ import annotations

from verify.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
