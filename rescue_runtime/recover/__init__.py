"""Bringing a saved layout back: activating it for repair (activate*.py) and recreating it."""
