"""`mkmedia update pack`: the overlay a running rescue system applies with `mkmedia update`.

pack.py writes the archive from plain parameters (files, layout directory, runtime code, a
signing key); command.py translates the configuration and the command line into that call.
The format and its checks are rescue_runtime/update/overlay.py, shared with the rescue side.
"""
