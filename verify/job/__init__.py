"""Layer 4, the verification job behind ``python -m verify``: every claim checked numerically.

It uses the public API (``verify``, ``verify.nn``) and the layers below; nothing below imports it.
"""
