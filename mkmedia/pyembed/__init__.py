"""A trimmed copy of the host's CPython and `rescue_runtime`, embedded into the rescue tree.

- embed.py: the builder side: ask the target interpreter, copy it, write the stdlib zip.
- probe.py: run BY the target interpreter (standard library only, any CPython 3.8+): its
  facts, the import closure of our packages, .pyc compilation.
- archive.py: the byte-reproducible zip CPython imports the standard library from.
"""
