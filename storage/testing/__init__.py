"""The shared BlobStore driver suite, shipped with the package so any driver can run it.

Importing this package needs the test dependencies (pytest, hypothesis).
"""

from __future__ import annotations

from storage.testing.model import BlobStoreModel, run_model
from storage.testing.suite import BlobStoreSuite, fetch, put

__all__ = ["BlobStoreModel", "BlobStoreSuite", "fetch", "put", "run_model"]
