"""Recovery on bare metal: verify -> recreate -> restore -> finalize, one module each.

`recreate` turns a saved layout (rescue_runtime.layout) into a reviewable, re-runnable bash
script that rebuilds the disks; `activate` brings an existing layout up for repair
(mountonly) and takes it down again. Standard library only.
"""
