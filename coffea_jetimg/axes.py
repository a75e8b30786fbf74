"""Histogram axis names and labels: defined once, read by the processor and the studies.

:class:`~coffea_jetimg.processors.JetTaggingProcessor` names its histogram axes with these
constants and the studies look axes up by them; a new axis is one constant here plus its
definition in the processor.

Axis metadata the studies read (all optional):

- the ``score`` axis: ``{"model", "signal_class", "class_names"}``;
- the ``msd`` axis: its ``label`` is what the plots print (:func:`mass_label` gives it from the
  jet field that fills the axis: ``msoftdrop``, or plain ``mass`` for jets without it, e.g. AK4);
- the ``channel`` axis: ``{"channels": [names], "intensity": "pt", "normalize": "sum"}``
  (the image spec's fields) for channel names in titles and the colour-bar unit.
"""

from __future__ import annotations

from .selection import OTHER, TruthLabel

__all__ = [
    "CLASS", "SCORE", "PT", "MSD", "ABS_ETA", "NPV", "CHANNEL", "IY", "IX", "PREDICTED", "SYSTEMATIC", "MOMENT",
    "JET_AXES", "PIXEL_AXES", "MASS_LABELS", "mass_label", "CLASS_NOTES",
]

CLASS = "class"          #: truth class (StrCategory)
SCORE = "score"          #: the model's signal probability
PT = "pt"                #: jet pT [GeV]
MSD = "msd"              #: jet mass [GeV]: soft-drop mass, or plain mass where the jets have none
ABS_ETA = "abs_eta"      #: jet |η|
NPV = "npv"              #: number of primary vertices
CHANNEL = "channel"      #: image channel index
IY = "iy"                #: image pixel row (η')
IX = "ix"                #: image pixel column (φ')
PREDICTED = "predicted"  #: predicted class index (argmax of the class probabilities)
SYSTEMATIC = "systematic"  #: ``nominal`` or ``<variation>Up`` / ``<variation>Down`` (StrCategory)
MOMENT = "moment"        #: k of a moment histogram's Σ w yᵏ

#: The per-jet variables of a score histogram, after ``class`` and ``score``.
JET_AXES: tuple[str, ...] = (PT, MSD, ABS_ETA, NPV)
#: The axes of a per-pixel histogram, after ``class``.
PIXEL_AXES: tuple[str, ...] = (CHANNEL, IY, IX)

#: Label of the ``msd`` axis by the jet field that fills it.
MASS_LABELS: dict[str, str] = {"msoftdrop": "Soft-drop mass [GeV]", "mass": "Jet mass [GeV]"}


def mass_label(field: str) -> str:
    """The ``msd`` axis label for the jet field it is filled from (``'msoftdrop'`` or ``'mass'``)."""
    try:
        return MASS_LABELS[field]
    except KeyError:
        raise ValueError(f"mass field {field!r}: expected one of {sorted(MASS_LABELS)}") from None


#: What a truth class is, for legends of classes a model was not trained on.
CLASS_NOTES: dict[str, str] = {
    TruthLabel.TOP.class_name: "hadronic top contained in the jet",
    TruthLabel.W.class_name: "hadronic W contained in the jet, not a whole top",
    TruthLabel.QCD.class_name: "no contained top or W",
    OTHER: "truth code with no class name",
}
