"""The rescue runtime: standard library only.

It runs inside the booted rescue system (recover, mountonly, update, ...) and on the host for
layout capture and backup. It never imports the `mkmedia` builder package.
"""

__version__ = "0.1.0"
