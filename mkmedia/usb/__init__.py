"""USB sticks and disk images as rescue media: `mkmedia format` and the OUTPUT=USB emitter.

A formatted stick has a GPT (protective MBR, marked bootable for BIOSes that want an active
entry) with up to three partitions:

    1  bios_grub    1 MiB   GRUB's i386-pc core image (BIOS); boot.img sits in the MBR
    2  ESP          FAT32   EFI/BOOT/BOOTX64.EFI: our GRUB, or shim + the signed GRUB
    3  MKMEDIA-000  ext4    boot/grub/grub.cfg (the menu), rescue/<host>/<stamp>/ (images),
                            backup/ and mkmedia/ (the stick's marker and format record)

Both GRUBs find the data partition by the stick's marker file and read the one menu there,
which OUTPUT=USB rewrites after each build. Nothing needs a loop device or a mount: the file
systems are made at their offset (mkfs.fat --offset, mke2fs -E offset=) and filled with
mtools and debugfs, so a plain image file and a block device take the same path.
"""
