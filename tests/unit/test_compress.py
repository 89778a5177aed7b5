"""Initrd compression: each kind decompresses to the same cpio, kernel-friendly settings, and
the kernel configuration check."""

from __future__ import annotations

import gzip
import io
import lzma
import os
from pathlib import Path

import pytest
import zstandard

from mkmedia.initrd import check_kernel_support, pack_tree
from mkmedia.initrd.compress import DEFAULT_LEVELS, compressing
from mkmedia.kernel.choice import Kernel
from rescue_runtime.errors import ConfigError


def small_tree(root: Path) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    # Compressible but not trivial: text plus some random bytes, > 1 zstd job is not needed.
    (root / "usr/bin/a").write_bytes(b"hello initrd\n" * 5000 + os.urandom(3000))
    (root / "usr/bin/b").write_bytes(b"")
    os.symlink("a", root / "usr/bin/c")
    return root


def decompress(kind: str, data: bytes) -> bytes:
    if kind == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "xz":
        return lzma.decompress(data, format=lzma.FORMAT_XZ)
    return data


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return small_tree(tmp_path / "tree")


def test_every_kind_holds_the_same_archive(tree: Path, tmp_path: Path) -> None:
    plain = pack_tree(tree, tmp_path / "plain", compression="none", source_date_epoch=0)
    reference = (tmp_path / "plain").read_bytes()
    for kind in ("zstd", "gzip", "xz"):
        out = tmp_path / f"initrd.{kind}"
        result = pack_tree(tree, out, compression=kind, source_date_epoch=0)
        data = out.read_bytes()
        assert decompress(kind, data) == reference, kind
        assert result.level == DEFAULT_LEVELS[kind]
        assert result.uncompressed_bytes == plain.uncompressed_bytes
        assert result.compressed_bytes == len(data) < len(reference)


def test_zstd_output_does_not_depend_on_thread_count(tree: Path, tmp_path: Path) -> None:
    digests = {
        pack_tree(tree, tmp_path / f"t{n}", threads=n, level=5, source_date_epoch=0).sha256
        for n in (0, 1, 2, 3)
    }
    assert len(digests) == 1


def test_zstd_levels_differ(tree: Path, tmp_path: Path) -> None:
    one = pack_tree(tree, tmp_path / "l1", level=1)
    nineteen = pack_tree(tree, tmp_path / "l19", level=19)
    assert one.sha256 != nineteen.sha256
    params = zstandard.get_frame_parameters((tmp_path / "l19").read_bytes())
    assert params.has_checksum
    # Level 19's window stays small enough for the kernel's boot-time decompressor.
    assert params.window_size <= 8 << 20


def test_gzip_header_carries_no_name_or_time(tree: Path, tmp_path: Path) -> None:
    pack_tree(tree, tmp_path / "initrd.gz", compression="gzip", level=9)
    head = (tmp_path / "initrd.gz").read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0  # FLG: no FNAME (the temporary file's name would vary)
    assert head[4:8] == b"\0\0\0\0"  # MTIME


def test_xz_uses_crc32_as_the_kernel_requires(tree: Path, tmp_path: Path) -> None:
    pack_tree(tree, tmp_path / "initrd.xz", compression="xz")
    data = (tmp_path / "initrd.xz").read_bytes()
    assert data[:6] == b"\xfd7zXZ\x00"
    assert data[6:8] == b"\x00\x01"  # stream flags: check type 1 = CRC32 (xz defaults to CRC64)


def test_bad_settings_are_config_errors(tree: Path, tmp_path: Path) -> None:
    cases: list[dict[str, object]] = [
        {"compression": "lz4"},
        {"compression": "zstd", "level": 20},
        {"compression": "gzip", "level": 0},
        {"compression": "xz", "level": 10},
        {"threads": -1},
    ]
    for kwargs in cases:
        with pytest.raises(ConfigError):
            pack_tree(tree, tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_compressing_none_is_the_sink_itself() -> None:
    sink = io.BytesIO()
    with compressing(sink, "none") as stream:
        stream.write(b"abc")
    assert sink.getvalue() == b"abc"


def parse_config(path: Path) -> dict[str, str]:
    """The kernel's .config: NAME=value lines; '# NAME is not set' means absent."""
    config: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            name, value = line.split("=", 1)
            config[name] = value.strip('"')
    return config


def test_kernel_config_check_with_debian_kernel(host_kernel: Kernel) -> None:
    # the configuration of the kernel KERNEL=auto picks (a Debian kernel: it has zstd)
    if host_kernel.config is None:
        pytest.skip(f"kernel {host_kernel.version} has no configuration file installed")
    config_file = host_kernel.config
    config = parse_config(config_file)
    for kind in ("zstd", "gzip", "xz", "none"):
        check_kernel_support(kind, config, config_file=config_file)

    without_zstd = {k: v for k, v in config.items() if k != "CONFIG_RD_ZSTD"}
    with pytest.raises(ConfigError) as info:
        check_kernel_support("zstd", without_zstd, config_file=config_file)
    message = str(info.value)
    assert str(config_file) in message
    assert "CONFIG_RD_ZSTD not set" in message
    assert "gzip, xz, none" in message  # what this kernel can unpack instead

    only_gzip = {"CONFIG_BLK_DEV_INITRD": "y", "CONFIG_RD_GZIP": "y", "CONFIG_RD_XZ": "n"}
    with pytest.raises(ConfigError, match=r"CONFIG_RD_XZ=n.*supports: gzip, none"):
        check_kernel_support("xz", only_gzip, config_file="/boot/config-custom")
    with pytest.raises(ConfigError, match="CONFIG_BLK_DEV_INITRD not set"):
        check_kernel_support("none", {"CONFIG_RD_ZSTD": "y"})
