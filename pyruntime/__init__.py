"""pyruntime: an OCI container runtime in the style of runc (Python policy, C mechanism)."""

__version__ = "0.1.0"
SPEC_VERSION = "1.2.0"
