"""The leave-one-session-out report: per-fold and mean ± std UA/WA of every system, the
paper's figures beside them, and pooled confusion matrices (Table 2 of Padi et al.)."""
import numpy as np

from mmer_lobes.metrics import summarize_confusion


def summarize_systems(fold_metrics):
    """Aggregates per-fold metrics into the ``results.json`` structure.

    Arguments
    ---------
    fold_metrics : dict
        ``{system: {fold: metrics dict with "UA", "WA", "confusion"}}``.

    Returns
    -------
    dict
        ``{"systems": {system: {"folds": {fold: {"UA", "WA"}}, "mean": {...}, "std": {...},
        "pooled": {"UA", "WA", "confusion"}}}}``; std is the population std over folds.

    Example
    -------
    >>> folds = {"text": {"1": {"UA": 60.0, "WA": 50.0, "confusion": [[3, 1], [1, 1]]},
    ...                   "2": {"UA": 70.0, "WA": 70.0, "confusion": [[2, 0], [0, 2]]}}}
    >>> r = summarize_systems(folds)["systems"]["text"]
    >>> r["mean"], r["std"], r["pooled"]["WA"]
    ({'UA': 65.0, 'WA': 60.0}, {'UA': 5.0, 'WA': 10.0}, 80.0)
    """
    systems = {}
    for system, folds in fold_metrics.items():
        ordered = sorted(folds, key=int)
        entry = {"folds": {f: {"UA": folds[f]["UA"], "WA": folds[f]["WA"]} for f in ordered}}
        for statistic, function in (("mean", np.mean), ("std", np.std)):
            entry[statistic] = {
                key: float(function([folds[f][key] for f in ordered])) for key in ("UA", "WA")
            }
        pooled = np.sum([np.asarray(folds[f]["confusion"]) for f in ordered], axis=0)
        class_names = [str(i) for i in range(pooled.shape[0])]
        summary = summarize_confusion(pooled, class_names)
        entry["pooled"] = {"UA": summary["UA"], "WA": summary["WA"], "confusion": pooled.tolist()}
        systems[system] = entry
    return {"systems": systems}


def render_report(results, classes, paper=None, title="Leave-one-session-out results", notes=()):
    """Markdown report: one table of mean ± std, one of per-fold values, pooled confusions.

    Arguments
    ---------
    results : dict
        As returned by :func:`summarize_systems`.
    classes : list of str
        Class names of the confusion matrices.
    paper : dict, optional
        ``{system: {"UA": x, "WA": y}}``, the paper's IEMOCAP figures, shown in their own
        labelled column.
    title : str
    notes : list of str
        Paragraphs printed under the title (e.g. what corpus this is).

    Example
    -------
    >>> results = {"systems": {"text": {"folds": {"1": {"UA": 60.0, "WA": 50.0}},
    ...     "mean": {"UA": 60.0, "WA": 50.0}, "std": {"UA": 0.0, "WA": 0.0},
    ...     "pooled": {"UA": 60.0, "WA": 50.0, "confusion": [[1, 1], [0, 2]]}}}}
    >>> "| text | 60.00 ± 0.00 | 50.00 ± 0.00 | 70.33 | 70.24 |" in render_report(
    ...     results, ["ang", "sad"], {"text": {"UA": 70.33, "WA": 70.24}})
    True
    """
    paper = paper or {}
    systems = results["systems"]
    lines = [f"# {title}", ""]
    for note in notes:
        lines += [note, ""]
    lines += [
        "## Mean over folds",
        "",
        "| system | UA (%) | WA (%) | paper UA (IEMOCAP) | paper WA (IEMOCAP) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entry in systems.items():
        reference = paper.get(name) or {}
        lines.append(
            f"| {name} | {entry['mean']['UA']:.2f} ± {entry['std']['UA']:.2f} | "
            f"{entry['mean']['WA']:.2f} ± {entry['std']['WA']:.2f} | "
            f"{_figure(reference.get('UA'))} | {_figure(reference.get('WA'))} |"
        )
    folds = sorted({f for entry in systems.values() for f in entry["folds"]}, key=int)
    lines += ["", "## Per fold (test session): UA / WA (%)", "",
              "| system | " + " | ".join(f"session {f}" for f in folds) + " |",
              "| --- |" + " --- |" * len(folds)]
    for name, entry in systems.items():
        cells = [
            f"{entry['folds'][f]['UA']:.1f} / {entry['folds'][f]['WA']:.1f}" if f in entry["folds"] else "–"
            for f in folds
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Pooled confusion matrices (all test folds; rows: true, columns: predicted)", ""]
    for name, entry in systems.items():
        confusion = entry["pooled"]["confusion"]
        lines += [f"### {name} (pooled UA {entry['pooled']['UA']:.2f}, WA {entry['pooled']['WA']:.2f})", "",
                  f"![{name}](confusion_{name}.png)", "",
                  "| true \\ predicted | " + " | ".join(classes) + " |",
                  "| --- |" + " --- |" * len(classes)]
        for label, row in zip(classes, confusion):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _figure(value):
    return "–" if value is None else f"{value:.2f}"
