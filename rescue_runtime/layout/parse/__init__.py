"""Parsers for the storage tools' outputs, one module per tool.

Each takes the tool's text (as the tool printed it) and returns plain records; none runs a
command. Malformed input raises ParseError naming the tool and what was wrong.
"""

from rescue_runtime.layout.parse.common import ParseError

__all__ = ["ParseError"]
