"""The rescue system restores a backup from nfs://, cifs:// and usb:// (one guest boot).

The servers run on this host in user space (tests/netservers.py: nfs-ganesha for NFSv4,
samba's smbd for SMB 3), both exporting one directory; the guest reaches them at 10.0.2.2
through QEMU's user-mode network. This host's kernel has no NFS or CIFS client, so the host
writes the backup of a rich tree (tests/metadata.py) straight into the exported directory
with the NETFS code (the same bytes the servers serve), and onto a stick image made by the
real `mkmedia format` (mounted here through a loop device).

The rescue system is built for BACKUP_URL=cifs://... with a credentials file in
BACKUP_OPTIONS (so the build must carry the file and mount.cifs itself); the programs and
modules nfs:// and usb:// need are added as their own lists say. In the guest, for each URL in
turn (rescue.json rewritten between them, as an operator would change the configuration):
`mkmedia recover --demo` into a directory of an ext4 disk, then the tree checker
(tests/e2e/treemanifest.py) compares every entry's content and metadata with the host's
record of the original, and no backup mount is left. usb:// names the stick by its label,
/dev/disk/by-label/MKMEDIA-000, and recover --demo must name the stick as a device it never
writes. The verdicts come from inside the guest.

Then the write side: the guest restores the tree once more onto a disk of its own and backs it
up through its real NFS and CIFS clients (tests/vm/netfs_writer.py: the NETFS code mounting
by scheme and writing volumes, manifest and the final rename on the share); this host
verifies each of those backups (manifest, sizes, sha256), restores it and compares every
entry with the original's record.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import pytest

from mkmedia.qemu import Machine
from rescue_runtime.backup import usbstick
from rescue_runtime.backup.netfs import Netfs
from rescue_runtime.backup.sources import plan_backup
from rescue_runtime.layout.capture import capture
from rescue_runtime.run import which
from tests.e2e import treemanifest
from tests.loopfs import loop_filesystem
from tests.metadata import make_rich_tree
from tests.netservers import nfs_server, smb_server
from tests.rescue_build import build_media, rescue_guest, sh
from tests.sticks import FORMAT_TOOLS, attached_stick, make_stick

SERVERS = ("ganesha.nfsd", "smbd", "smbpasswd", "mount.nfs", "mount.cifs")
pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="loop devices, mknod and setcap need root"),
    pytest.mark.skipif(
        any(which(tool) is None for tool in (*SERVERS, *FORMAT_TOOLS, "setcap", "setfacl")),
        reason="nfs-ganesha, samba, nfs-common, cifs-utils or the stick's tools are missing",
    ),
]

HOST = os.uname().nodename.split(".")[0]
GATEWAY = "10.0.2.2"  # this host, as QEMU's user-mode network shows it to the guest
STEP = 300.0
PY_SET_URL = (
    "import json,sys; p='/etc/mkmedia/rescue.json'; d=json.load(open(p)); "
    "d['backup_url']=d['settings']['BACKUP_URL']=sys.argv[1]; "
    "d['settings']['BACKUP_OPTIONS']=sys.argv[2]; open(p,'w').write(json.dumps(d))"
)


def quiet(done: int, total: int) -> None:
    pass


def test_restore_from_nfs_cifs_and_usb(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    check = tmp_path / "check"  # copied into the rescue system: the checker and the record
    check.mkdir()
    shutil.copy(Path(treemanifest.__file__), check / "treemanifest.py")
    shutil.copy(Path(__file__).with_name("netfs_writer.py"), check / "netfs_writer.py")
    stick = tmp_path / "stick.img"
    make_stick(stick, tmp_path / "format")
    system = tmp_path / "system"
    with loop_filesystem(tmp_path / "system.img", system, "ext4") as device:
        make_rich_tree(system)
        plan = plan_backup(capture(str(system), devices=[device]))
        # keyed from "/", so the guest compares its restore directory with --under
        record = treemanifest.record(["/"], ["/lost+found"], under=str(system))
        (check / "expected.json").write_text(json.dumps(record))
        Netfs.backup(plan, export / HOST, url="file://", layout_sha256=None, progress=quiet)
        with (
            attached_stick(stick) as loop,
            Netfs.target(f"usb://{loop}p3", HOST, work_dir=tmp_path / "mnt") as on_stick,
        ):
            Netfs.backup(plan, on_stick, url="usb://", layout_sha256=None, progress=quiet)
    entries = len(record["entries"])  # type: ignore[arg-type]

    with (
        nfs_server(export, tmp_path / "nfs") as nfs,
        smb_server(export, tmp_path / "smb") as smb,
    ):
        cifs_url = f"cifs://{GATEWAY}:{smb.port}/{smb.share}"
        cifs_options = f"credentials={smb.credentials}"  # SMB 3.1.1, encrypted: its crypto
        urls = [
            ("cifs", cifs_url, cifs_options),
            ("nfs", f"nfs://{GATEWAY}:{nfs.port}{nfs.pseudo}", "vers=4.2"),
            ("usb", usbstick.DEFAULT_URL, ""),
        ]
        others = (f"nfs://{GATEWAY}/export", usbstick.DEFAULT_URL)  # what the build adds
        programs = sorted({p for url in others for p in Netfs.programs_for(url)})
        modules = sorted({m for url in others for m in Netfs.modules_for(url)})
        ramdisk = build_media(
            tmp_path / "build",
            output="RAMDISK",
            sets=(
                "BACKUP=NETFS",
                f"BACKUP_URL={cifs_url}",
                f"BACKUP_OPTIONS={cifs_options}",
                f"REQUIRED_PROGS+={','.join([*programs, 'mkfs.ext4'])}",
                f"MODULES+={','.join(modules)}",
                f"COPY_AS_IS+={check}",
            ),
        )
        disk, tree = tmp_path / "restore.img", tmp_path / "tree.img"
        for image in (disk, tree):
            with open(image, "wb") as f:
                f.truncate(512 * 1024 * 1024)
        machine = Machine(
            kernel=ramdisk / "rescue-kernel",
            initrd=ramdisk / "rescue-initrd.img",
            # a starved TCG guest can fail the IO-APIC timer check and panic
            append="console=ttyS0,115200 no_timer_check",
            disks=[disk, tree],
            # the stick on xHCI (Machine.usb_disk would make it the boot device, which a
            # kernel booted by QEMU itself is already)
            extra=[
                "-device", "qemu-xhci,id=xhci",
                "-drive", f"file={stick},format=raw,if=none,id=stick,snapshot=on",
                "-device", "usb-storage,bus=xhci.0,drive=stick",
            ],
        )  # fmt: skip
        with rescue_guest(machine, tmp_path / "console.log", extra_seconds=900) as guest:
            # On a starved machine the boot's network step can give up before the NIC has a
            # carrier (init.status: "no interface configured"); this test is about the shares.
            sh(
                guest,
                "ip -4 -o addr show | grep -q 'inet 10[.]0[.]2[.]' || "
                "dhclient -1 -4 $(ls /sys/class/net | grep -v '^lo$' | head -1)",
            )
            sh(guest, "dmesg -n 1; mkfs.ext4 -q -F /dev/vda && mkdir /restore")
            sh(guest, "mount /dev/vda /restore")
            # the build carried the credentials file (BACKUP_OPTIONS) with its mode
            assert sh(guest, f"stat -c %a {smb.credentials}").strip() == "600"
            for scheme, url, options in urls:
                target = f"/restore/{scheme}"
                sh(guest, f"python3 -c {shlex.quote(PY_SET_URL)} {url} {shlex.quote(options)}")
                out = sh(guest, f"mkmedia recover --demo {target} 2>&1")
                assert "Restored " in out and "no disk was touched" in out, out
                devices = out.split("never a recover target):")[1].splitlines()[0].strip()
                if scheme == "usb":  # the stick (on the USB bus) is never a recover target
                    path = sh(guest, f"readlink -f /sys/class/block/{devices[5:]}").strip()
                    assert "/usb" in path, (devices, path)
                else:
                    assert devices == "none", out
                status, compared = guest.shell(
                    f"python3 {check}/treemanifest.py compare {check}/expected.json "
                    f"--under {target}",
                    timeout=STEP,
                )
                assert status == 0, f"{scheme}: {compared}"
                assert compared.strip().endswith(f"{entries} entries, 0 differences"), compared
                assert sh(guest, "grep -c backup-target /proc/mounts || true").strip() == "0"
            # the write side, from a tree of its own file system (rescue.json names usb://)
            sh(guest, "mkfs.ext4 -q -F /dev/vdb && mkdir /tree && mount /dev/vdb /tree")
            sh(guest, "rmdir /tree/lost+found && mkmedia recover --demo /tree 2>&1")
            for scheme, url, options in urls[:2]:
                out = sh(
                    guest,
                    f"python3 {check}/netfs_writer.py /tree /dev/vdb {url} "
                    f"{shlex.quote(options)} {scheme}-writer 2>&1",
                )
                assert "Backed up " in out and f" to {url}" in out, out
            assert sh(guest, "grep -c netfs-writer /proc/mounts || true").strip() == "0"
    for scheme, url, _ in urls[:2]:  # what the guest wrote, as the share holds it
        directory = export / f"{scheme}-writer"
        manifest = Netfs.verify(directory)
        assert manifest["url"] == url, manifest
        restored = tmp_path / f"written-{scheme}"
        restored.mkdir()
        # sha256 checked by verify just above; restore still checks sizes and zstd's sums
        Netfs.restore(directory, restored, progress=quiet, check_sha256=False)
        actual = treemanifest.record(["/"], ["/lost+found"], under=str(restored))
        assert treemanifest.compare(record, actual) == [], scheme
