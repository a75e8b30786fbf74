"""Whole-event images (Madrazo et al.): :func:`coffea_jetimg.event_images.event_images` →
``(n_events, 3, H, W)``, one per (selected) event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputsError
from ._base import InputSpec, has_collection, register

if TYPE_CHECKING:  # pragma: no cover
    from ..event_images import EventImageSpec
    from .plan import BuildContext

__all__ = ["EventImageInput"]


@register
class EventImageInput(InputSpec):
    """``{"kind": "event_image", "event_image_spec": EventImageSpec.to_dict() or null}``."""

    kind = "event_image"
    level = "event"
    KEYS = {"event_image_spec": None}

    @classmethod
    def make(cls, *, jets: str = "FatJet", event_image_spec: Any = None, **_ignored: Any) -> dict[str, Any]:
        if hasattr(event_image_spec, "to_dict"):
            event_image_spec = event_image_spec.to_dict()
        return {"kind": cls.kind, "event_image_spec": event_image_spec, "jets": jets, "shape": None}

    @property
    def event_image_spec(self) -> EventImageSpec:
        from ..event_images import EventImageSpec

        d = self.spec.get("event_image_spec")
        return EventImageSpec.from_dict(d) if d else EventImageSpec()

    def describe(self) -> str:
        w, h = self.event_image_spec.npix
        return f"event image {w}x{h}"

    def columns(self, events: Any) -> set[tuple[str, str]]:
        from ..event_images import needed_columns

        return set(needed_columns(events, self.event_image_spec))

    def check(self, events: Any, jets: str | None = None, layout: str | None = None) -> None:
        for coll in ("Jet", "MET"):
            if not has_collection(events, coll):
                raise InputsError(f"event-image model needs the '{coll}' collection, absent from the events")

    def build(self, ctx: BuildContext) -> np.ndarray:
        from ..event_images import event_images

        return event_images(ctx._require_events("event images"), self.event_image_spec)
