#!/usr/bin/env python3
r"""A named non-neural baseline on one fold of a prepared corpus, the fold the speech and
text recipes cut (same splits, same classes), so that every neural figure of a report is
read against a baseline from the same run:

    python recipes/train_baseline.py hparams/baseline_egemaps.yaml --data_folder <corpus> --test_fold 5
    python recipes/train_baseline.py hparams/baseline_tfidf.yaml --data_folder <corpus> --test_fold 5

The YAML names the modality, the features (openSMILE eGeMAPS functionals of each clip, or
the transcript as it is) and a scikit-learn pipeline; the pipeline is fitted on the training
split once per point of ``selection_grid`` and the point with the best hold-out
``selection_metric`` is kept (mmer_lobes.baselines). Writes under ``output_folder`` what
the neural recipes write (mmer_lobes.evaluation): ``fold/``, ``scores/{holdout,test}.csv``,
``metrics_{holdout,test}.json``, ``confusion_{holdout,test}.png``, and ``train_log.txt``
with the hold-out figure of every grid point.

Bad input (a corpus or fold that cannot be built, a modality the corpus cannot train, an
audio file that cannot be read, a grid that does not fit the pipeline) ends the run with one
line, ``train_baseline.py: error: <message>``, and exit status 2 (mmer_lobes.errors.run_script).
"""
import logging
import sys

import numpy as np
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from tqdm import tqdm

from mmer_lobes.audio import audio_pipeline
from mmer_lobes.baselines import BaselineError, fit_on_holdout, log_posteriors
from mmer_lobes.errors import run_script
from mmer_lobes.evaluation import ScoreCollector
from mmer_lobes.folds import fold_dataset, prepare_recipe_fold, rename_legacy_overrides

logger = logging.getLogger(__name__)
# The item of a fold's utterance that each modality's baseline reads.
INPUT_ITEMS = {"speech": "sig", "text": "transcript"}


def dataio_prep(hparams, fold_paths):
    """``{split: DynamicItemDataset}`` of the fold with ``id``, ``emo`` and the modality's input."""
    modality = hparams["modality"]
    if modality not in INPUT_ITEMS:
        raise BaselineError(f"modality must be one of {list(INPUT_ITEMS)}, got {modality!r}")
    pipelines = [audio_pipeline(hparams["sample_rate"])] if modality == "speech" else []
    return {split: fold_dataset(path, hparams["data_folder"], pipelines, ["id", "emo", INPUT_ITEMS[modality]])
            for split, path in fold_paths.items()}


def baseline_inputs(hparams, dataset, split):
    """The ids, the features (``hparams["features"]`` of each input, or the inputs as they
    are when it is null) and the class indices of one split."""
    item, extract = INPUT_ITEMS[hparams["modality"]], hparams["features"]
    index = {name: i for i, name in enumerate(hparams["emotions"])}
    ids, inputs, labels = [], [], []
    for entry in tqdm(dataset, desc=f"{split} inputs", dynamic_ncols=True):
        ids.append(entry["id"])
        inputs.append(entry[item] if extract is None else extract(entry[item]))
        labels.append(index[entry["emo"]])
    return ids, (inputs if extract is None else np.stack(inputs)), np.array(labels)


def main(argv=None):
    """Prepares the fold, fits the baseline with the hold-out's choice, scores hold-out and test."""
    hparams_file, _, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    overrides = rename_legacy_overrides(overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(hparams["output_folder"], hyperparams_to_save=hparams_file,
                                   overrides=overrides)
    datasets = dataio_prep(hparams, prepare_recipe_fold(hparams, hparams["modality"]))
    splits = {split: baseline_inputs(hparams, datasets[split], split) for split in ("train", "holdout", "test")}
    classes = list(hparams["emotions"])
    try:
        model, tried = fit_on_holdout(hparams["classifier"], hparams["selection_grid"], splits["train"][1:],
                                      splits["holdout"][1:], hparams["selection_metric"])
    except BaselineError as error:
        raise BaselineError(f"{hparams_file}: {error}") from error
    except ValueError as error:  # scikit-learn refusing the data: NaN features, an empty vocabulary...
        raise BaselineError(f"{hparams_file}: the baseline cannot be fitted on this fold: {error}") from error
    train_logger = hparams["train_logger"]
    for parameters, score in tried:
        train_logger.log_stats(stats_meta=parameters, valid_stats={hparams["selection_metric"]: score})
    chosen = {key: model.get_params()[key] for key in hparams["selection_grid"] or {}}  # what was fitted
    logger.info("Kept %s (best hold-out %s of %d points)", chosen, hparams["selection_metric"], len(tried))
    for split in ("holdout", "test"):
        ids, inputs, labels = splits[split]
        collector = ScoreCollector(classes)
        collector.append(ids, torch.from_numpy(log_posteriors(model, inputs, len(classes))),
                         torch.from_numpy(labels))
        metrics = collector.write_results(hparams["output_folder"], split)
        train_logger.log_stats(stats_meta={"split": split, **chosen},
                               test_stats={key: metrics[key] for key in ("UA", "WA", "wF1")})


if __name__ == "__main__":
    sys.exit(run_script(main, "train_baseline.py"))
