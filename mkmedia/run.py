"""Re-export of the one subprocess wrapper (it lives in rescue_runtime, which is stdlib only)."""

from rescue_runtime.run import Result, require, run, run_bytes, which

__all__ = ["Result", "require", "run", "run_bytes", "which"]
