"""Persistence on the host side: the checkpoint format (format.py) and its checksum (crc32c.py)."""
