"""The initrd packer: a reproducible cpio newc archive of the rescue tree, compressed.

from mkmedia.initrd import pack_tree
result = pack_tree(tree, Path("out/initrd.zst"), source_date_epoch=sde)
"""

from mkmedia.initrd.compress import (
    COMPRESSIONS,
    DEFAULT_LEVELS,
    KERNEL_OPTIONS,
    LEVEL_RANGES,
    check_kernel_support,
)
from mkmedia.initrd.cpio import CpioWriter, Entry
from mkmedia.initrd.pack import PackResult, pack_tree
from mkmedia.initrd.tree import DEFAULT_DEVICE_NODES, DeviceNode, TreeScan, iter_tree

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_DEVICE_NODES",
    "DEFAULT_LEVELS",
    "KERNEL_OPTIONS",
    "LEVEL_RANGES",
    "CpioWriter",
    "DeviceNode",
    "Entry",
    "PackResult",
    "TreeScan",
    "check_kernel_support",
    "iter_tree",
    "pack_tree",
]
