"""The machine mkmedia runs on, as the configuration sees it.

- sysinfo.py: the system definition (ARCH, OS, vendor, version, firmware, installed kernels).
- paths.py: where mkmedia's own data (recipes/, bootloaders/) and configuration directory are.
"""
