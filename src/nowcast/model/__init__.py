"""nowcast.model (see the package docstring of nowcast)."""
