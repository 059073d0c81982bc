"""nowcast.synthetic (see the package docstring of nowcast)."""
