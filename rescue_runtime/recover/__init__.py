"""Recovery on bare metal: verify -> recreate -> restore -> finalize, one module each.

`recreate` turns a saved layout (rescue_runtime.layout) into a reviewable, re-runnable bash
script that rebuilds the disks; the other stages build on it. Standard library only.
"""
