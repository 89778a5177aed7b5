"""What one mkmedia run on the host owns, around the workflow's steps.

- lock.py: the run lock, so two runs cannot trample each other's work.
- log.py: the log file and the short lines on the terminal.
- epoch.py: SOURCE_DATE_EPOCH, the one time a reproducible build may use.
- artifacts.py: what the run wrote, the manifest that lists it, and the atomic write.
"""
