"""nowcast.store (see the package docstring of nowcast)."""
