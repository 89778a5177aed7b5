"""pack stage: the kernel and the compressed initrd."""

from __future__ import annotations

import shutil

from mkmedia.initrd.compress import check_kernel_support
from mkmedia.initrd.pack import pack_tree
from mkmedia.kernel.choice import kernel_config
from mkmedia.session.log import say
from mkmedia.workflow import Context, step


@step("pack", 100)
def pack_initrd(ctx: Context) -> None:
    """Pack the tree into a reproducible cpio archive, compressed, and copy the kernel."""
    kernel = ctx.kernel
    compression = ctx.config.get_str("COMPRESSION")
    if kernel.config is None:
        ctx.warn(
            f"kernel {kernel.version} has no config file; its {compression} support is unchecked"
        )
    else:
        check_kernel_support(compression, kernel_config(kernel), config_file=kernel.config)
    level = ctx.config.get_int("COMPRESSION_LEVEL") or None
    initrd = ctx.build_dir / "initrd.img"
    result = pack_tree(
        ctx.tree,
        initrd,
        compression=compression,
        level=level,
        source_date_epoch=ctx.epoch,
        progress=True,
    )
    kernel_copy = ctx.build_dir / "kernel"
    shutil.copyfile(kernel.image, kernel_copy)
    ctx.initrd = initrd
    ctx.kernel_image = kernel_copy
    say(f"  initrd {result.compressed_bytes / 1e6:.1f} MB ({compression})")
