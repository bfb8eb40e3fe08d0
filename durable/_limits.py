"""Production storage limits, enforced by default so that tests catch what Cloudflare would refuse.

The numbers are Cloudflare's documented limits: for key-value-backed classes, keys of at most 2048
UTF-8 bytes, values of at most 128 KiB encoded, 128 keys per batch; for SQLite-backed classes, a key
plus its value at most 2 MB. ``Runtime(limits=Limits.unlimited())`` (or a ``Limits`` with some
fields changed) relaxes them for code that does not target production.
"""

from __future__ import annotations

import dataclasses
from typing import final

__all__ = ["Limits"]


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Storage limits of a runtime. ``None`` in a field means "no limit".

    Example::

        rt = durable.Runtime(limits=durable.Limits(kv_max_value_bytes=None))
    """

    kv_max_key_bytes: int | None = 2048
    kv_max_value_bytes: int | None = 131072
    kv_max_batch: int | None = 128
    sqlite_max_row_bytes: int | None = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        # Checked here, not at the first put: a bad limit would otherwise surface there as a bare
        # "'>' not supported between instances of 'int' and 'str'" from inside storage.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(
                    f"Limits({field.name}=...) must be an int or None (no limit), not {type(value).__name__}"
                )
            if value < 1:
                raise ValueError(f"Limits({field.name}=...) must be at least 1 (or None for no limit), not {value}")

    @classmethod
    def unlimited(cls) -> Limits:
        """Limits that refuse nothing (beyond what SQLite itself refuses)."""
        return cls(None, None, None, None)
