"""Fit the templates of a `coffea-jetimg run` (its hists.root) with pyhf: signal strength and pulls.

The templates are the TH1s `{region}/{process}`, `{region}/{process}_{syst}Up/Down` and
`{region}/data_obs` that `run` writes (see its --template-* options). The fit is a HistFactory
model: the signal process scaled by mu, every Up/Down pair a shape nuisance with a unit-Gaussian
constraint, the MC statistical uncertainty per bin (staterror), optional free background
normalisations. Writes fit.json (mu, its uncertainty, the pulls), workspace.json (pyhf JSON, which
`pyhf fit` and cabinetry read too) and fit.png (pre- and post-fit yields with the data).
"""

from __future__ import annotations

import sys

HELP = "fit the templates of a run (hists.root) with pyhf: signal strength mu and nuisance pulls"


def add_arguments(parser) -> None:
    parser.add_argument("templates", metavar="HISTS.ROOT", help="hists.root of `coffea-jetimg run` (or any file of "
                        "TH1s named REGION/PROCESS[_SYSTUp|Down] with REGION/data_obs)")
    parser.add_argument("--signal", required=True, action="append", metavar="PROCESS",
                        help="the signal process(es), scaled by mu")
    parser.add_argument("--free-norm", action="append", default=[], metavar="PROCESS",
                        help="a background process whose normalisation floats freely")
    parser.add_argument("--no-staterror", action="store_true", help="no MC statistical uncertainties")
    parser.add_argument("--min-mc-events", type=float, default=10.0, metavar="N",
                        help="prune a sample's variations to nominal in bins with fewer effective MC events")
    parser.add_argument("-o", "--output", default=None, help="directory for fit.json, workspace.json, fit.png")


def main(args) -> int:
    import json
    from pathlib import Path

    from .errors import JetImgError
    from .fit import fit_templates, plot_fit, save_workspace

    try:
        res, ws = fit_templates(args.templates, args.signal, free_norms=args.free_norm,
                                stat_errors=not args.no_staterror, min_mc_events=args.min_mc_events)
    except (JetImgError, OSError, ValueError) as err:
        print(f"coffea-jetimg fit: {args.templates}: {err}", file=sys.stderr)
        return 2
    print(res.text())
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fit.json").write_text(json.dumps({"templates": str(args.templates), "signal": args.signal,
                                                  "free_norms": args.free_norm, **res.summary()}, indent=2) + "\n")
        save_workspace(ws, out / "workspace.json")
        from .studies.templates import template_label

        plot_fit(res, out / "fit.png", title=f"signal {'+'.join(args.signal)}",
                 xlabel=template_label(args.templates) or "observable", note=str(args.templates))
        print(f"wrote {out / 'fit.json'}, {out / 'workspace.json'}, {out / 'fit.png'}")
    return 0
