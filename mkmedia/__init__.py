"""mkmedia: build bootable rescue media for Linux servers and recover them on bare metal."""

__version__ = "0.1.0"
