"""Storage: one small interface (``base.Store``) and thin adapters beside it."""

from .base import Decision, Store, StoreCounts
from .memory import MemoryStore

__all__ = ["Decision", "MemoryStore", "Store", "StoreCounts"]
