"""Small helpers shared by the adapters and processors (one copy instead of one per module)."""

from __future__ import annotations

__all__ = ["fields_of", "is_dask"]


def fields_of(arr) -> list[str]:
    """Record field names of an (eager or dask) awkward array; ``[]`` for non-records."""
    try:
        return list(arr.fields)
    except Exception:
        return []


def is_dask(x) -> bool:
    """Whether ``x`` is a dask-awkward array (False when dask-awkward is not installed)."""
    try:
        import dask_awkward as dak
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, dak.Array)
