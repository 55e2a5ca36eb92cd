"""The response cache: L1 memory, L2 Redis, L3 disk, tiered by `TieredCache`."""

from deployments.cache.popularity import Popularity
from deployments.cache.singleflight import SingleFlight
from deployments.cache.tiered import CacheHit, TieredCache

__all__ = ["CacheHit", "Popularity", "SingleFlight", "TieredCache"]
