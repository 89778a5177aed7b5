#!/bin/sh
# Fill DIR with the entries a backup and a recovery must bring back exactly: many small files,
# a few large ones, a sparse file, hard links across directories, relative/absolute/dangling
# symlinks, setuid/setgid/sticky modes, a file capability, user.* xattrs, access and default
# ACLs, a FIFO, a device node, an empty directory, awkward names, and a uid/gid with no
# passwd entry. Needs: coreutils, attr (setfattr), acl (setfacl), libcap2-bin (setcap).
# Usage: make-testdata.sh DIR [SMALL_FILES] [LARGE_MIB]
set -eu
dir=$1
small=${2:-500}
large_mib=${3:-8}
mkdir -p "$dir/small" "$dir/large" "$dir/links/a" "$dir/links/b" "$dir/meta" "$dir/names" \
    "$dir/empty-dir" "$dir/acl-default"

i=0
while [ "$i" -lt "$small" ]; do
    sub="$dir/small/d$((i % 20))"
    mkdir -p "$sub"
    printf 'small file %s\n%s\n' "$i" "$(seq "$i" "$((i + i % 7))")" > "$sub/f$i.txt"
    i=$((i + 1))
done
for n in 1 2; do
    dd if=/dev/urandom of="$dir/large/random$n.bin" bs=1M count="$large_mib" status=none
done

# Sparse: 256 MiB long, two 1 MiB data extents.
truncate -s 256M "$dir/large/sparse.img"
dd if=/dev/urandom of="$dir/large/sparse.img" bs=1M count=1 seek=10 conv=notrunc status=none
dd if=/dev/urandom of="$dir/large/sparse.img" bs=1M count=1 seek=200 conv=notrunc status=none

echo "shared content" > "$dir/links/a/original"
ln "$dir/links/a/original" "$dir/links/b/hardlink"
ln "$dir/links/a/original" "$dir/links/third hardlink"
ln -s ../a/original "$dir/links/b/relative-symlink"
ln -s "$dir/links/a/original" "$dir/links/absolute-symlink"
ln -s /nonexistent/target "$dir/links/dangling-symlink"

cp /bin/true "$dir/meta/setuid-true" && chmod 4755 "$dir/meta/setuid-true"
cp /bin/true "$dir/meta/setgid-true" && chmod 2755 "$dir/meta/setgid-true"
mkdir -p "$dir/meta/sticky" && chmod 1777 "$dir/meta/sticky"
cp /bin/true "$dir/meta/cap-true" && setcap cap_net_raw,cap_net_bind_service+ep "$dir/meta/cap-true"
echo "xattr carrier" > "$dir/meta/xattrs"
setfattr -n user.mkmedia.comment -v "kept by the backup" "$dir/meta/xattrs"
setfattr -n user.mkmedia.binary -v 0x00ff10 "$dir/meta/xattrs"
echo "acl carrier" > "$dir/meta/acl-file"
setfacl -m u:4242:rw-,g:4343:r-- "$dir/meta/acl-file"
setfacl -d -m u:4242:rwx "$dir/acl-default"
setfacl -m u:4242:r-x "$dir/acl-default"
echo "inherits the default ACL" > "$dir/acl-default/child"
echo "owned by nobody known" > "$dir/meta/orphan-owner"
chown 4242:4343 "$dir/meta/orphan-owner"
chmod 0640 "$dir/meta/orphan-owner"
mkfifo "$dir/meta/fifo"
mknod "$dir/meta/null-device" c 1 3
touch -d "2001-02-03 04:05:06.789" "$dir/meta/xattrs"

echo spaces > "$dir/names/name with  spaces"
echo utf8 > "$dir/names/grüße-ñ-日本"
echo dash > "$dir/names/-leading-dash"
echo newline > "$dir/names/$(printf 'tab\tin name')"
