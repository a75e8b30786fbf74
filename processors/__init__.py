"""coffea processors of coffea-jetimg (installed as ``coffea_jetimg.processors``).

Thin, stateless :class:`coffea.processor.ProcessorABC` classes; the physics is in library
functions (:mod:`coffea_jetimg.inputs`, :mod:`coffea_jetimg.inference`, and the functions of
each processor module) that tests call directly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["JetTaggingProcessor", "EventImageProcessor"]


def __getattr__(name: str) -> Any:  # import lazily: torch and the event-image code load only when used
    if name == "JetTaggingProcessor":
        from .jet_tagging import JetTaggingProcessor

        return JetTaggingProcessor
    if name == "EventImageProcessor":
        from .event_image import EventImageProcessor

        return EventImageProcessor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
