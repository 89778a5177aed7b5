"""The rescue runtime: standard library only.

It runs inside the booted rescue system (recover, mountonly, update, ...) and on the host for
layout capture and backup. It never imports the `mkmedia` builder package.
"""

import os as _os

__version__ = "0.1.0"

# In a rescue system, an overlay's runtime code (`mkmedia update`, rescue_runtime/update/)
# comes first: the package's modules are then loaded from there, the built-in ones behind it.
_RUNTIME_OVERLAY = "/var/lib/mkmedia/runtime/rescue_runtime"
if _os.path.isfile("/etc/mkmedia/rescue.json") and _os.path.isfile(
    _RUNTIME_OVERLAY + "/__init__.py"
):
    __path__.insert(0, _RUNTIME_OVERLAY)
