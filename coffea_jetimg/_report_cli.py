"""Collect the plots and the summary of a `coffea-jetimg run` output directory into one page.

Writes OUTDIR/report.md and OUTDIR/report.html (the PNGs are linked relative to OUTDIR).
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

HELP = "collect plots and summary of a run into report.md and report.html"


def add_arguments(parser) -> None:
    parser.add_argument("outdir", help="output directory of `coffea-jetimg run`")
    parser.add_argument("--title", default="coffea-jetimg report", help="title of the page")


def _fmt(x):
    if isinstance(x, float):
        return f"{x:.4g}"
    return "–" if x is None else str(x)


def _rej(r: dict, eff: float, with_interval: bool = True) -> str:
    """1/ε_B at ε_S = ``eff`` of a summary entry: value [interval], or "> N" when no background passes."""
    from .studies import format_rejection

    key = f"R{round(100 * eff):d}"
    wp = (r.get("working_points") or {}).get(f"{eff:g}") or {}
    return format_rejection(r.get(key), r.get(f"{key}_lower_limit"), wp.get("interval") if with_interval else None)


def build_markdown(summary: dict, title: str) -> str:
    """The report page: skipped files, the taggers' numbers, models not evaluated, cutflow, plots."""
    lines = [f"# {title}", ""]
    if summary.get("complete") is False:
        lines += ["## Incomplete run", "", f"The run stopped: {summary.get('error', 'unknown error')}. The histograms "
                  f"hold {len(summary.get('chunks_in_histograms') or [])} of "
                  f"{(summary.get('chunks') or {}).get('planned', '?')} "
                  "chunks (listed in summary.json).", ""]
    if summary.get("bad_files"):
        lines += ["## Skipped bad files", ""] + [f"- `{p}`: {r}" for p, r in summary["bad_files"].items()] + [""]
    if summary.get("lost_chunks"):
        lines += ["## Chunks not in the histograms", "", f"{summary.get('events_lost', '?')} events lost.", "",
                  "| file | entries | dataset | error |", "| --- | --- | --- | --- |"]
        lines += [f"| `{c['file']}` | {c['entry_start']}–{c['entry_stop']} | {c['dataset']} | {c['error']} |"
                  for c in summary["lost_chunks"]] + [""]
    models = summary.get("models") or {}
    evaluated = {n: r for n, r in models.items() if "error" not in r}
    failed = {n: r["error"] for n, r in models.items() if "error" in r}
    if evaluated:
        lines += ["## Taggers", "",
                  "Rejections 1/εB interpolated at the signal efficiency εS, with 68% intervals (Poisson, "
                  "background passing); \"> N\": no background jet passes (N background jets).", "",
                  "| model | signal | background | AUC | 1/εB at εS=0.3 | 1/εB at εS=0.5 | 1/JSD at εS=0.5 |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in evaluated.items():
            d = r.get("decorrelation") or {}
            note = f" ({r['reason']})" if r.get("reason") else ""
            lines.append(f"| {name} | {r.get('signal')}{note} | {'+'.join(r.get('background') or [])} "
                         f"| {_fmt(r.get('auc'))} "
                         f"| {_rej(r, 0.3)} | {_rej(r, 0.5)} | {_fmt(d.get('inv_jsd'))} |")
        lines.append("")
    if failed:
        lines += ["## Models not evaluated", ""] + [f"- `{n}`: {e}" for n, e in failed.items()] + [""]
    for name, r in evaluated.items():
        if r.get("pt_bins"):
            lines += [f"### {name} per pT bin", "", "| pT [GeV] | n sig | n bkg | AUC | R30 | R50 |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for b in r["pt_bins"]:
                lines.append(f"| {b['pt'][0]:.0f}–{b['pt'][1]:.0f} | {b['n_signal']:.0f} | {b['n_background']:.0f} "
                             f"| {_fmt(b['auc'])} | {_rej(b, 0.3, False)} | {_rej(b, 0.5, False)} |")
            lines.append("")
    if summary.get("data_datasets"):
        lines += ["## Data", "", "Data datasets (not in the taggers' figures, which are MC truth; in the fit templates "
                  "as `data_obs`): " + ", ".join(f"`{d}`" for d in summary["data_datasets"]), ""]
    ds_info = {d: v for d, v in (summary.get("datasets") or {}).items() if "sumw" in v}
    if ds_info:
        lines += ["## Normalisation", "", "| dataset | process | MC | Σw | xsec [pb] | lumi [pb⁻¹] | scale |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {d} | {v.get('process')} | {'yes' if v.get('is_mc') else 'data'} | {_fmt(v.get('sumw'))} | "
                  f"{_fmt(v.get('xsec'))} | {_fmt(v.get('lumi'))} | {_fmt(v.get('scale'))} |"
                  for d, v in ds_info.items()]
        lines.append("")
    t = summary.get("templates")
    if t:
        lines += ["## Fit templates", "", f"Model `{t.get('model')}`, observable `{t.get('observable')}`, working "
                  f"points {t.get('wps')}: {len(t.get('names') or [])} TH1s in `hists.root` "
                  "(`REGION/PROCESS`, `REGION/PROCESS_SYSTUp|Down`, `REGION/data_obs`; "
                  "`coffea-jetimg fit` reads them).",
                  ""]
    if summary.get("cutflow"):
        lines += ["## Cutflow", "", "| step | count |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in summary["cutflow"].items()] + [""]
    if summary.get("plots"):
        lines += ["## Plots", ""]
        for p in summary["plots"]:
            lines += [f"### {Path(p).stem}", "", f"![{Path(p).stem}]({p})", ""]
    return "\n".join(lines) + "\n"


def markdown_to_html(md: str, title: str) -> str:
    """A small converter for the Markdown written above (headings, tables, lists, images)."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #999;padding:2px 8px}img{max-width:700px}</style></head><body>"]
    rows: list[list[str]] = []

    def flush():
        if rows:
            out.append("<table>")
            for i, r in enumerate(rows):
                tag = "th" if i == 0 else "td"
                out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in r) + "</tr>")
            out.append("</table>")
            rows.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("![") and "](" in line:
            alt = line[2:line.index("]")]
            src = line[line.index("](") + 2:-1]
            out.append(f"<p><img src='{html.escape(src)}' alt='{html.escape(alt)}'></p>")
        elif line.startswith("- "):
            out.append(f"<ul><li>{html.escape(line[2:])}</li></ul>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def main(args) -> int:
    outdir = Path(args.outdir)
    spath = outdir / "summary.json"
    if not spath.is_file():
        print(f"coffea-jetimg report: {spath} not found (run `coffea-jetimg run ... -o {outdir}` first)",
              file=sys.stderr)
        return 2
    summary = json.loads(spath.read_text())
    md = build_markdown(summary, args.title)
    (outdir / "report.md").write_text(md)
    (outdir / "report.html").write_text(markdown_to_html(md, args.title))
    print(f"wrote {outdir / 'report.md'} and {outdir / 'report.html'}")
    return 0
