#!/bin/bash
# Records the tools' real outputs for the layout parser tests on loop-backed image files.
# Run as root on the build machine: bash tests/data/layout/record-host.sh
# It writes tests/data/layout/<tool>/host-*.{json,txt}; the device-mapper fixtures
# (LVM, MD RAID, LUKS) cannot be made here and are written by hand (see README.md).
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
loops=()
cleanup() {
    set +e
    for m in "$work"/mnt/*; do mountpoint -q "$m" && umount "$m"; done
    for l in "${loops[@]}"; do losetup -d "$l"; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/mnt" "$out"/{lsblk,sfdisk,blkid,tune2fs,dumpe2fs,xfs_info,btrfs,findmnt}
# Sets $dev (not echoed: a command substitution would lose the loops+= in a subshell).
# The kernel does not always scan partitions on attach here: partx adds them.
attach() { dev=$(losetup -f --show -P "$1"); loops+=("$dev"); partx -u "$dev" 2>/dev/null || true; partx -a "$dev" 2>/dev/null || true; }
# Partition nodes appear asynchronously after partx: wait for the ones named.
wait_nodes() { local n; for n in "${@:2}"; do for _ in $(seq 50); do [ -b "$1p$n" ] && break; sleep 0.1; done; done; }

# GPT: ESP (vfat), ext4 root, swap, xfs.
truncate -s 700M "$work/gpt.img"
sfdisk -q "$work/gpt.img" <<'PT'
label: gpt
size=100MiB, type=uefi, name=esp
size=120MiB, type=linux, name=root
size=64MiB, type=swap, name=swap
size=320MiB, type=linux, name=data
PT
attach "$work/gpt.img"; g=$dev; wait_nodes "$g" 1 2 3 4
mkfs.vfat -F 32 -n ESP "${g}p1" >/dev/null
mkfs.ext4 -q -L root -b 4096 -I 256 -m 2 "${g}p2"
mkswap -L swap0 "${g}p3" >/dev/null
mkfs.xfs -q -f -L data "${g}p4"
mkdir -p "$work/mnt/root" "$work/mnt/data"
mount "${g}p2" "$work/mnt/root"
mount "${g}p4" "$work/mnt/data"
sfdisk -J "$g" >"$out/sfdisk/host-gpt.json"
blkid -o export "${g}p1" "${g}p2" "${g}p3" "${g}p4" >"$out/blkid/host-gpt.txt"
blkid -p -o export "$g" "${g}p1" "${g}p2" "${g}p3" "${g}p4" >"$out/blkid/host-gpt-probe.txt"
tune2fs -l "${g}p2" >"$out/tune2fs/host-ext4.txt"
dumpe2fs -h "${g}p2" >"$out/dumpe2fs/host-ext4.txt" 2>/dev/null
xfs_info "$work/mnt/data" >"$out/xfs_info/host-xfsprogs-6.1.txt"
lsblk -J -b -O "$g" >"$out/lsblk/host-gpt.json"

# MBR with an extended partition holding two logical ones.
truncate -s 300M "$work/mbr.img"
sfdisk -q "$work/mbr.img" <<'PT'
label: dos
label-id: 0x5eed1234
size=80MiB, type=83, bootable
size=60MiB, type=82
type=5
size=50MiB, type=83
size=50MiB, type=83
PT
attach "$work/mbr.img"; m=$dev; wait_nodes "$m" 1 2 5 6
mkfs.ext2 -q -L boot "${m}p1"
mkfs.ext3 -q -L logical1 "${m}p5"
mkfs.vfat -n LOGICAL2 "${m}p6" >/dev/null
sfdisk -J "$m" >"$out/sfdisk/host-mbr.json"
blkid -o export "${m}p1" "${m}p5" "${m}p6" >"$out/blkid/host-mbr.txt"
lsblk -J -b -O "$m" >"$out/lsblk/host-mbr.json"
tune2fs -l "${m}p5" >"$out/tune2fs/host-ext3.txt"

# btrfs on a whole device with subvolumes and a default subvolume.
truncate -s 300M "$work/btrfs.img"
attach "$work/btrfs.img"; b=$dev
mkfs.btrfs -q -L pool -d single -m dup "$b"
mkdir -p "$work/mnt/btrfs"
mount "$b" "$work/mnt/btrfs"
btrfs -q subvolume create "$work/mnt/btrfs/@"
btrfs -q subvolume create "$work/mnt/btrfs/@home"
btrfs -q subvolume create "$work/mnt/btrfs/@/var-lib"
id=$(btrfs subvolume list "$work/mnt/btrfs" | awk '$NF=="@"{print $2}')
btrfs subvolume set-default "$id" "$work/mnt/btrfs"
btrfs subvolume list -p -u "$work/mnt/btrfs" >"$out/btrfs/host-subvolume-list.txt"
btrfs subvolume get-default "$work/mnt/btrfs" >"$out/btrfs/host-get-default.txt"
btrfs filesystem df -b "$work/mnt/btrfs" >"$out/btrfs/host-filesystem-df.txt"
btrfs filesystem show --raw "$work/mnt/btrfs" >"$out/btrfs/host-filesystem-show.txt"
umount "$work/mnt/btrfs"
btrfs subvolume get-default "$b" >/dev/null 2>&1 || true
mkdir -p "$work/mnt/home"
mount "$b" "$work/mnt/btrfs"
mount -o subvol=@home,noatime,compress=zstd "$b" "$work/mnt/home"
blkid -o export "$b" >"$out/blkid/host-btrfs.txt"
lsblk -J -b -O "$b" >"$out/lsblk/host-btrfs.json"
# Keep / and the test's mounts only (the rest is this machine's private plumbing).
findmnt -J -l -b -o SOURCE,TARGET,FSTYPE,OPTIONS,MAJ:MIN,FSROOT,UUID,LABEL \
    | WORK="$work" python3 -c '
import json, os, sys
work = os.environ["WORK"]
data = json.load(sys.stdin)
keep = [f for f in data["filesystems"] if f["target"] in ("/", "/proc", "/sys", "/dev")
        or f["target"].startswith(work)]
for f in keep:
    f["target"] = f["target"].replace(work, "/tmp/work")
json.dump({"filesystems": keep}, sys.stdout, indent=3)
' >"$out/findmnt/host.json"
# LUKS1 and LUKS2 headers on plain files (luksFormat needs no device-mapper; opening does).
mkdir -p "$out/cryptsetup" "$out/lvm"
for v in luks1 luks2; do
    truncate -s 40M "$work/$v.img"
done
echo -n test | cryptsetup luksFormat -q --type luks1 --cipher aes-xts-plain64 --key-size 512 \
    --hash sha256 --pbkdf-force-iterations 1000 "$work/luks1.img" -
echo -n test | cryptsetup luksFormat -q --type luks2 --label cryptroot --sector-size 4096 \
    --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-force-iterations 4 "$work/luks2.img" -
cryptsetup luksDump "$work/luks1.img" | sed "s|$work|/tmp/work|" >"$out/cryptsetup/host-luks1.txt"
cryptsetup luksDump "$work/luks2.img" >"$out/cryptsetup/host-luks2.txt"
cryptsetup luksDump --dump-json-metadata "$work/luks2.img" >"$out/cryptsetup/host-luks2-json.json"

# LVM: PVs and VGs can be made without device-mapper (LVs cannot: lvs is written by hand).
truncate -s 200M "$work/pv1.img"
truncate -s 200M "$work/pv2.img"
attach "$work/pv1.img"; p1=$dev
attach "$work/pv2.img"; p2=$dev
export LVM_SUPPRESS_FD_WARNINGS=1
pvcreate -q --devices "$p1,$p2" "$p1" "$p2"
vgcreate -q --devices "$p1,$p2" -s 8M --addtag site-a vgdata "$p1" "$p2"
pvs --devices "$p1,$p2" --reportformat json --units b --nosuffix \
    -o pv_name,pv_uuid,vg_name,pv_size,pv_mda_count,pe_start >"$out/lvm/host-pvs.json"
vgs --devices "$p1,$p2" --reportformat json --units b --nosuffix \
    -o vg_name,vg_uuid,vg_extent_size,vg_size,vg_tags >"$out/lvm/host-vgs.json"
vgremove -q -f --devices "$p1,$p2" vgdata
echo "recorded into $out"
