"""The rescue system's /init (PID 1): `boot` runs the boot steps; `cmdline`, `consoles`,
`network`, `sshd` and `system` are the pieces it calls. Standard library only."""
