"""pytest plugin placeholder (filled in by the KTAP worker)."""
