"""A small Python client of hvmmd's hvmm.v1 API (stubs generated from proto/ at build time)."""

from hvmm_client.client import HvmmClient, HvmmError, NotifierWatch, FaultWatch

__all__ = ["HvmmClient", "HvmmError", "NotifierWatch", "FaultWatch"]
