"""Taggers stored in the file: CMS's own discriminators histogrammed beside our models.

NanoAOD and PFNano carry the collaboration's taggers as jet branches (``Jet_qgl``,
``FatJet_particleNet_TvsQCD``, ``FatJet_deepTag_WvsQCD``, ...). A :class:`StoredTagger` reads
one such branch and the processor fills it into the same ``score``/``predicted``/``score_moments``
histograms as a model, on the same selected jets, so every ROC plot and table shows CMS's tagger
beside ours (``JetTaggingProcessor(stored=...)``, ``coffea-jetimg run --stored qgl``).

Values outside [0, 1] (``Jet_qgl = -1`` where no likelihood was computed: jets outside the
tracker or without enough constituents) go into the lowest score bin, as a cut on the
discriminator would treat them, and are counted (``stored_<name>_invalid`` in the cutflow): a
ROC keeps every jet in its denominators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["StoredTagger", "KNOWN_STORED", "parse_stored"]


@dataclass(frozen=True)
class StoredTagger:
    """A discriminator branch of the jets, scored like a model.

    Parameters
    ----------
    field : str
        The jet field (``qgl`` for ``Jet_qgl``).
    signal_class, background_class : str
        The truth classes it separates (the value is the signal-likeness, 0 to 1).
    name : str, optional
        Its name in the histograms (default: ``field``).
    description : str
        What the branch is (the file's branch title, for legends and ``model_info``).
    """

    field: str
    signal_class: str
    background_class: str
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.field)
        if self.signal_class == self.background_class:
            raise ValueError(f"stored tagger {self.field!r}: signal and background are both {self.signal_class!r}")

    @property
    def class_names(self) -> list[str]:
        """``[background, signal]``, as a two-class model's outputs."""
        return [self.background_class, self.signal_class]

    @property
    def signal_index(self) -> int:
        return 1

    def values(self, flat_jets: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(scores clipped to [0, 1], invalid)`` of flat jets; invalid: outside [0, 1] or NaN."""
        import awkward as ak

        raw = np.asarray(ak.to_numpy(flat_jets[self.field]), np.float64)
        invalid = ~((raw >= 0.0) & (raw <= 1.0))
        return np.where(invalid, 0.0, raw), invalid

    def info(self, jets: str) -> dict[str, Any]:
        """Its :meth:`JetTaggingProcessor.model_info` entry."""
        return {"stored_branch": f"{jets}_{self.field}", "description": self.description,
                "class_names": self.class_names, "signal_class": self.signal_class, "input_kind": "stored",
                "image": None}


def _known() -> dict[str, StoredTagger]:
    out = {"qgl": StoredTagger("qgl", "quark", "gluon", description="CMS quark/gluon likelihood"),
           "btagDeepFlavQG": StoredTagger("btagDeepFlavQG", "gluon", "quark",
                                          description="DeepJet g vs uds discriminator")}
    for tagger, text in (("particleNet", "ParticleNet"), ("deepTag", "DeepAK8"), ("deepTagMD", "DeepAK8-MD")):
        for sig, cls in (("T", "top"), ("W", "w")):
            f = f"{tagger}_{sig}vsQCD"
            out[f] = StoredTagger(f, cls, "qcd", description=f"CMS {text} {sig} vs QCD")
    return out


#: Discriminators of NanoAOD/PFNano whose classes are known (``--stored NAME`` needs no classes).
KNOWN_STORED: dict[str, StoredTagger] = _known()


def parse_stored(texts: Sequence[str]) -> list[StoredTagger]:
    """``--stored`` values: ``FIELD`` (one of :data:`KNOWN_STORED`) or ``FIELD:SIGNAL,BACKGROUND``
    (any jet branch, e.g. ``particleNet_QCD:qcd,top``). ``ValueError`` names the bad value."""
    out: list[StoredTagger] = []
    for text in texts:
        field, _, classes = text.partition(":")
        if not field:
            raise ValueError(f"--stored {text!r}: expected FIELD or FIELD:SIGNAL,BACKGROUND")
        if not classes:
            if field not in KNOWN_STORED:
                raise ValueError(f"--stored {text!r}: classes unknown for {field!r}; known: {', '.join(KNOWN_STORED)}"
                                 f" (or say FIELD:SIGNAL,BACKGROUND)")
            out.append(KNOWN_STORED[field])
            continue
        parts = [p.strip() for p in classes.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"--stored {text!r}: expected FIELD:SIGNAL,BACKGROUND (two class names)")
        out.append(StoredTagger(field, parts[0], parts[1]))
    return out
