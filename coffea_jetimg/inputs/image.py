"""Jet images: :func:`coffea_jetimg.images.jet_images` → ``(n_jets, C, H, W)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._util import fields_of
from ..errors import InputsError
from ._base import ConstituentInput, register

if TYPE_CHECKING:  # pragma: no cover
    from ..images import JetImageSpec
    from .plan import BuildContext

__all__ = ["ImageInput"]


@register
class ImageInput(ConstituentInput):
    """``{"kind": "image", "image_spec": JetImageSpec.to_dict()}``."""

    kind = "image"
    KEYS = {"image_spec": None}

    @classmethod
    def validate(cls, block: dict[str, Any]) -> None:
        if not block.get("image_spec"):
            raise InputsError("input kind 'image' needs 'image_spec'")

    @classmethod
    def make(cls, *, jets: str = "FatJet", architecture: str | None = None, image_spec: Any = None,
             image_preset: str | None = None, image_overrides: dict[str, Any] | None = None,
             **_ignored: Any) -> dict[str, Any]:
        """Image models use ``image_spec`` or the preset ``image_preset`` (default: the preset
        named like the architecture, else ``'komiske'``), with the
        :class:`~coffea_jetimg.images.JetImageSpec` fields in ``image_overrides`` replaced."""
        from ..images import PRESETS, JetImageSpec

        if image_spec is None:
            name = image_preset or (architecture if architecture in PRESETS else "komiske")
            image_spec = JetImageSpec.preset(name)
        elif isinstance(image_spec, dict):
            image_spec = JetImageSpec.from_dict(image_spec)
        if image_overrides:
            try:
                image_spec = JetImageSpec.from_dict({**image_spec.to_dict(), **image_overrides})
            except (TypeError, ValueError) as err:
                raise InputsError(f"image settings {image_overrides}: {err}") from None
        npix = image_spec.npix if isinstance(image_spec.npix, (tuple, list)) else (image_spec.npix,) * 2
        return {"kind": cls.kind, "image_spec": image_spec.to_dict(), "jets": jets,
                "shape": [len(image_spec.channels), int(npix[0]), int(npix[1])]}

    @property
    def image_spec(self) -> JetImageSpec:
        from ..images import JetImageSpec

        return JetImageSpec.from_dict(self.spec["image_spec"])

    def describe(self) -> str:
        s = self.image_spec
        return f"image {'+'.join(s.channels)} {s.npix[0]}x{s.npix[1]}"

    def constituent_fields(self) -> tuple[str, ...]:
        from ..images import constituent_fields

        return constituent_fields(self.image_spec)

    def columns(self, events: Any) -> set[tuple[str, str]]:
        if self.image_spec.axis != "jet":
            return set()
        jf = fields_of(events[self.jets])  # the stored axis (rapidity needs pt and mass too)
        return {(self.jets, f) for f in ("pt", "eta", "phi", "mass") if f in jf}

    def build(self, ctx: BuildContext) -> np.ndarray:
        from ..images import jet_images

        spec = self.image_spec
        axes: dict[str, Any] = {}
        if spec.axis == "jet":
            axes = dict(zip(("jet_eta", "jet_phi"), ctx.jet_axes(spec.coordinate)))
        return jet_images(ctx.cands(), spec, **axes)
