"""From histograms to numbers, plots and files: the studies of a :class:`JetTaggingProcessor` output.

Modules
-------
:mod:`coffea_jetimg.axes`
    Histogram axis names (``CLASS``, ``SCORE``, ``PT``, ``MSD``, ...), defined once for the
    processor and the studies.
:mod:`.hists`
    Histogram maths: merging datasets, projections, ROC / working points / JSD / Pearson maps
    on histograms through :mod:`coffea_jetimg.metrics`.
:mod:`.plots`
    PNG plots; each function returns what it drew.
:mod:`.files`
    ``hists.coffea`` (coffea's format), ``hists.root`` (uproot), JSON.
:mod:`.templates`
    Fit templates ``{region}/{process}[_{syst}Up|Down]``, ``data_obs`` (combine / cabinetry / pyhf
    names), normalised to ``xsec × lumi / Σw``; :mod:`coffea_jetimg.fit` fits them.
:mod:`.report`
    :func:`summarize` and :func:`run_studies` (and :func:`save_event_outputs` for event images).

No events are read here. Conventions of the numbers (cuts ``score >= t`` at the score-bin
edges, interpolated working points, binomial and Poisson intervals): :mod:`coffea_jetimg.metrics`.
"""

from __future__ import annotations

from ..metrics import jsd, pearson_map
from .. import axes
from .files import load_hists, save_hists, write_json, write_root
from .hists import (average_images, channel_meta, classes_by_dataset, confusion_matrix, decorrelation,
                    mass_at_working_point, merge_class_hists, merge_datasets, pearson_maps, pick_classes, project,
                    score_counts, score_roc, sliced_mass)
from .plots import class_label, plot_confusion, plot_decorrelation, plot_image, plot_roc, plot_sliced_mass
from .templates import dataset_scales, make_templates, read_templates, write_templates
from .report import (WORKING_POINTS, format_rejection, image_channel_names, image_colorbar_label, run_studies,
                     save_event_outputs, summarize)

__all__ = [
    "axes",
    # hists
    "merge_class_hists", "merge_datasets", "classes_by_dataset", "pick_classes", "project", "score_counts",
    "score_roc", "sliced_mass", "decorrelation", "mass_at_working_point", "average_images", "pearson_maps",
    "confusion_matrix", "channel_meta",
    # metrics used by the studies (the objects of coffea_jetimg.metrics, not copies)
    "jsd", "pearson_map",
    # plots
    "class_label", "plot_roc", "plot_sliced_mass", "plot_image", "plot_confusion", "plot_decorrelation",
    # files
    "save_hists", "load_hists", "write_root", "write_json",
    # templates
    "make_templates", "write_templates", "read_templates", "dataset_scales",
    # report
    "WORKING_POINTS", "summarize", "run_studies", "save_event_outputs", "format_rejection",
    "image_channel_names", "image_colorbar_label",
]
