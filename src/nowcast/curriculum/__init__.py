"""nowcast.curriculum (see the package docstring of nowcast)."""
