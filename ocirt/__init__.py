"""ocirt: an OCI container runtime in Python."""

__version__ = "0.1.0"
