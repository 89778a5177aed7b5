"""Disk layout as data: capture the storage stack, save it, show it, check it for changes.

`capture()` runs the storage tools and returns a `Layout` (model.py); `save()`/`load()` keep
it as layout.json + layout.txt under /var/lib/mkmedia/layout; `compare()` lists the
differences that matter for recovery; `build_graph()` answers what depends on what.
"""

from rescue_runtime.layout.model import FORMAT_VERSION, Layout

__all__ = ["FORMAT_VERSION", "Layout"]
