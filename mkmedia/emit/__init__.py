"""Emitters: one module per output kind; each returns the artifacts it wrote (for the manifest).

Workflow steps (mkmedia/steps/output.py) choose the emitter by OUTPUT and pass plain parameters.
"""

from mkmedia.session.artifacts import Artifact

__all__ = ["Artifact"]
