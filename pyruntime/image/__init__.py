"""OCI images for pyruntime: load local OCI layouts/archives into a content-addressed
layer store, assemble overlay2 bundles from them, and measure layer waste.

Kept import-light on purpose: only the image verbs import this package, and each
submodule pulls in just what it needs.
"""

from pyruntime.errors import Failure


class ImageError(Failure):
    """Any refusal or failure of the image machinery, with a one-line message for the user.

    A Failure, so the CLI reports it like every other error (one line, exit 1)."""
