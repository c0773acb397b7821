"""The experiment's report: per-fold and mean ± std UA/WA of every system, the paper's
figures beside them on IEMOCAP (Table 2 of Padi et al.), and pooled confusion matrices.
Folds keep the order of the protocol (mmer_lobes.corpora.fold_names)."""
import numpy as np

from mmer_lobes.metrics import confusion_matrix, summarize_confusion

# IEMOCAP's scripted dialogues reuse the same scripts in every session, so a text (or fused)
# figure on scripted test utterances is helped by sentences seen in training: the report
# shows the two kinds apart, from the manifests' ``improvised`` field.
SUBSETS = {"improvised": True, "scripted": False}
# The figures of every fold and system: UA, WA and weighted F1, in percent.
METRICS = ("UA", "WA", "wF1")
METRIC_NAMES = {"UA": "UA", "WA": "WA", "wF1": "weighted F1"}


def subset_confusions(score_set, manifest, field="improvised"):
    """Confusion counts of ``score_set`` on its improvised and its scripted utterances.

    Arguments
    ---------
    score_set : mmer_lobes.scores.ScoreSet
        A system's test scores of one fold.
    manifest : dict
        The fold's test manifest (utterance id -> entry with ``field``).
    field : str

    Returns
    -------
    dict or None
        ``{"improvised": counts, "scripted": counts}`` (lists of lists), or None when the
        manifest does not say which utterance is which.

    Example
    -------
    >>> from mmer_lobes.scores import ScoreSet
    >>> scores = ScoreSet(["a", "b", "c"], ["x", "y", "y"],
    ...                   np.log([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), ["x", "y"])
    >>> manifest = {"a": {"improvised": True}, "b": {"improvised": True}, "c": {"improvised": False}}
    >>> subset_confusions(scores, manifest)
    {'improvised': [[1, 0], [1, 0]], 'scripted': [[0, 0], [0, 1]]}
    """
    if not all(field in manifest.get(u, {}) for u in score_set.ids):
        return None
    truth = score_set.label_indices()
    predicted = score_set.scores.argmax(axis=1)
    kinds = np.array([bool(manifest[u][field]) for u in score_set.ids])
    return {
        name: confusion_matrix(truth[kinds == value], predicted[kinds == value],
                               len(score_set.classes)).tolist()
        for name, value in SUBSETS.items()
    }


def summarize_subsets(fold_confusions):
    """Per-fold, mean and pooled UA/WA of each subset, from :func:`subset_confusions`.

    Arguments
    ---------
    fold_confusions : dict
        ``{fold: {subset: confusion counts}}``.

    Returns
    -------
    dict
        ``{subset: {"folds": {fold: {"UA", "WA", "n"}}, "mean": {"UA", "WA"},
        "pooled": {"UA", "WA", "n"}}}``. A fold without utterances of a subset has no
        entry for it and does not enter its mean.

    Example
    -------
    >>> folds = {"1": {"improvised": [[1, 0], [1, 1]], "scripted": [[0, 0], [0, 0]]},
    ...          "2": {"improvised": [[2, 0], [0, 2]], "scripted": [[1, 1], [0, 2]]}}
    >>> r = summarize_subsets(folds)
    >>> r["improvised"]["mean"], r["improvised"]["pooled"], sorted(r["scripted"]["folds"])
    ({'UA': 87.5, 'WA': 83.33333333333334}, {'UA': 87.5, 'WA': 85.71428571428571, 'n': 7}, ['2'])
    """
    summary = {}
    for subset in SUBSETS:
        per_fold, pooled = {}, None
        for fold in sorted(fold_confusions, key=int):
            counts = np.asarray(fold_confusions[fold][subset])
            if counts.sum() == 0:
                continue
            per_fold[fold] = _ua_wa(counts)
            pooled = counts if pooled is None else pooled + counts
        if pooled is None:
            continue
        summary[subset] = {
            "folds": per_fold,
            "mean": {key: float(np.mean([f[key] for f in per_fold.values()])) for key in ("UA", "WA")},
            "pooled": _ua_wa(pooled),
        }
    return summary


def _ua_wa(counts):
    """UA (over the classes present), WA and the utterance count of a confusion matrix."""
    summary = summarize_confusion(counts, [str(i) for i in range(len(counts))])
    return {key: summary[key] for key in ("UA", "WA", "n")}


def summarize_systems(fold_metrics):
    """Aggregates per-fold metrics into the ``results.json`` structure.

    Arguments
    ---------
    fold_metrics : dict
        ``{system: {fold: metrics dict with "confusion"}}`` (a fold's ``metrics_test.json``).

    Returns
    -------
    dict
        ``{"systems": {system: {"folds": {fold: {"UA", "WA", "wF1"}}, "mean": {...}, "std": {...},
        "pooled": {"UA", "WA", "wF1", "confusion"}}}}``; std is the population std over folds.
        Every figure is computed from the fold's confusion counts (weighted F1 included).

    Example
    -------
    >>> folds = {"text": {"1": {"confusion": [[3, 1], [1, 1]]},  # UA (75 + 50) / 2
    ...                   "2": {"confusion": [[2, 0], [0, 2]]}}}    # UA 100
    >>> r = summarize_systems(folds)["systems"]["text"]
    >>> r["mean"]["UA"], r["std"]["UA"], r["pooled"]["WA"], r["folds"]["2"]["wF1"]
    (81.25, 18.75, 80.0, 100.0)
    """
    systems = {}
    for system, folds in fold_metrics.items():
        ordered = list(folds)  # the protocol's order
        summaries = {f: summarize_confusion(folds[f]["confusion"], _class_names(folds[f]["confusion"]))
                     for f in ordered}
        entry = {"folds": {f: {key: summaries[f][key] for key in METRICS} for f in ordered}}
        for statistic, function in (("mean", np.mean), ("std", np.std)):
            entry[statistic] = {
                key: float(function([summaries[f][key] for f in ordered])) for key in METRICS
            }
        pooled = np.sum([np.asarray(folds[f]["confusion"]) for f in ordered], axis=0)
        summary = summarize_confusion(pooled, _class_names(pooled))
        entry["pooled"] = {**{key: summary[key] for key in METRICS}, "confusion": pooled.tolist()}
        systems[system] = entry
    return {"systems": systems}


def _class_names(confusion):
    return [str(i) for i in range(len(confusion))]


def render_report(results, classes, paper=None, title="Leave-one-session-out results", notes=(),
                  fold_heading="session", metrics=("UA", "WA")):
    """Markdown report: one table of mean ± std, one of per-fold values, pooled confusions.

    Arguments
    ---------
    results : dict
        As returned by :func:`summarize_systems`.
    classes : list of str
        Class names of the confusion matrices.
    paper : dict, optional
        ``{system: {"UA": x, "WA": y}}``, the paper's IEMOCAP figures, shown in their own
        labelled column; no column without them.
    title : str
    notes : list of str
        Paragraphs printed under the title (e.g. what corpus this is).
    fold_heading : str
        What a fold is, in the per-fold table's header ("session", "actor group", "fold").
    metrics : sequence of str
        The figures of the tables, in order: some of :data:`METRICS` (MELD's reports lead
        with weighted F1).

    Example
    -------
    >>> results = {"systems": {"text": {"folds": {"1": {"UA": 60.0, "WA": 50.0}},
    ...     "mean": {"UA": 60.0, "WA": 50.0}, "std": {"UA": 0.0, "WA": 0.0},
    ...     "pooled": {"UA": 60.0, "WA": 50.0, "confusion": [[1, 1], [0, 2]]}}}}
    >>> "| text | 60.00 ± 0.00 | 50.00 ± 0.00 | 70.33 | 70.24 |" in render_report(
    ...     results, ["ang", "sad"], {"text": {"UA": 70.33, "WA": 70.24}})
    True
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"report metrics must be some of {list(METRICS)}, got {list(metrics)}")
    systems = results["systems"]
    lines = [f"# {title}", ""]
    if results.get("corpus"):
        lines += [f"Corpus and protocol: {results['corpus']}.", ""]
    for note in notes:
        lines += [note, ""]
    lines += ["## Mean over folds", ""]
    header = [f"{METRIC_NAMES[m]} (%)" for m in metrics]
    if paper:
        header += ["paper UA (IEMOCAP)", "paper WA (IEMOCAP)"]
    lines += ["| system | " + " | ".join(header) + " |", "| --- |" + " --- |" * len(header)]
    for name, entry in systems.items():
        row = f"| {name} | " + " | ".join(
            f"{entry['mean'][m]:.2f} ± {entry['std'][m]:.2f}" for m in metrics) + " |"
        if paper:
            reference = paper.get(name) or {}
            row += f" {_figure(reference.get('UA'))} | {_figure(reference.get('WA'))} |"
        lines.append(row)
    folds = list(dict.fromkeys(f for entry in systems.values() for f in entry["folds"]))
    lines += ["", f"## Per fold (test {fold_heading}): {' / '.join(METRIC_NAMES[m] for m in metrics)} (%)", "",
              "| system | " + " | ".join(f"{fold_heading} {f}" for f in folds) + " |",
              "| --- |" + " --- |" * len(folds)]
    for name, entry in systems.items():
        cells = [
            " / ".join(f"{entry['folds'][f][m]:.1f}" for m in metrics) if f in entry["folds"] else "–"
            for f in folds
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    with_subsets = {name: entry["subsets"] for name, entry in systems.items() if entry.get("subsets")}
    if with_subsets:
        lines += ["", "## Improvised and scripted test utterances: UA / WA (%), mean over folds", "",
                  "IEMOCAP's scripted dialogues reuse the same scripts in every session, so the text "
                  "branch has seen the sentences of scripted test utterances in training; the "
                  "improvised figures carry no such help.", "",
                  "| system | improvised UA | improvised WA | scripted UA | scripted WA |",
                  "| --- | --- | --- | --- | --- |"]
        for name, subsets in with_subsets.items():
            cells = []
            for subset in SUBSETS:
                mean = (subsets.get(subset) or {}).get("mean") or {}
                cells += [_figure(mean.get("UA")), _figure(mean.get("WA"))]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Pooled confusion matrices (all test folds; rows: true, columns: predicted)", ""]
    for name, entry in systems.items():
        confusion = entry["pooled"]["confusion"]
        pooled_figures = ", ".join(f"{METRIC_NAMES[m]} {entry['pooled'][m]:.2f}" for m in metrics)
        lines += [f"### {name} (pooled {pooled_figures})", "",
                  f"![{name}](confusion_{name}.png)", "",
                  "| true \\ predicted | " + " | ".join(classes) + " |",
                  "| --- |" + " --- |" * len(classes)]
        for label, row in zip(classes, confusion):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _figure(value):
    return "–" if value is None else f"{value:.2f}"
