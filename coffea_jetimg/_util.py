"""Small helpers shared by the adapters and processors (one copy instead of one per module)."""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["fields_of", "is_dask", "JsonSpec"]

_S = TypeVar("_S", bound="JsonSpec")


def fields_of(arr: Any) -> list[str]:
    """Record field names of an (eager or dask) awkward array; ``[]`` for non-records."""
    try:
        return list(arr.fields)
    except Exception:
        return []


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a dask-awkward array (False when dask-awkward is not installed)."""
    try:
        import dask_awkward as dak
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, dak.Array)


class JsonSpec:
    """Mixin for frozen dataclasses that travel inside model artifacts as JSON.

    Tuples become lists in :meth:`to_dict` and lists become tuples again in :meth:`from_dict`;
    unknown keys raise ValueError naming them (so a spec written by a newer version, or a typo
    in a hand-written spec, fails loudly instead of being ignored).
    """

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists)."""
        import dataclasses

        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_S], d: dict[str, Any]) -> _S:
        """Inverse of :meth:`to_dict`."""
        import dataclasses

        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} parameter(s): {', '.join(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    def to_json(self, **kw: Any) -> str:
        import json

        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls: type[_S], text: str) -> _S:
        import json

        return cls.from_dict(json.loads(text))

    def replace(self: _S, **changes: Any) -> _S:
        """A copy with ``changes`` applied (validated again)."""
        import dataclasses

        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
