"""nowcast.verification (see the package docstring of nowcast)."""
