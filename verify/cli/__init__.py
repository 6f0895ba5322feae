"""Layer 5, the command line: ``python -m verify`` (the verification job) and ``python -m verify reconstruct``."""
