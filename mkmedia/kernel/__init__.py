"""The kernel the rescue media boots and what it needs from /lib/modules and /lib/firmware.

- choice.py: the installed kernels, their version order, and the one KERNEL chooses.
- modindex.py: modules.dep, aliases, soft dependencies and builtins of one kernel.
- modules.py: MODULES_POLICY and MODULES into a closed module set, copied into the tree.
- modinfo.py: the .modinfo section of a module file (firmware names, aliases).
- firmware.py: firmware files found for a module set.
- hostdrivers.py: the drivers this host uses (sysfs), for the `loaded` policy.
"""
