#!/usr/bin/env python3
"""How optimistic is a hold-out drawn per utterance against one grouped by dialogue, on real
dialogue text? MELD (the official ``*_sent_emo.csv`` files), text only.

    python tests/benchmarks/holdout_gap_meld.py --meld_folder <folder with train_sent_emo.csv>

For each hold-out kind of mmer_lobes.folds (``stratified``: per utterance, ``dialogue``:
grouped) and three seeds, 10 % of MELD's train split is held out, a TF-IDF + logistic
regression text classifier (scikit-learn) is trained on the rest, and UA/WA are measured on
the hold-out and on MELD's test split. A hold-out that flatters the model shows a positive
gap (hold-out minus test). Prints one line per run.
"""
import argparse
import csv
import os

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from mmer_lobes.folds import dialogue_holdout_ids, stratified_holdout_ids
from mmer_lobes.metrics import classification_metrics

HOLDOUTS = {"stratified": stratified_holdout_ids, "dialogue": dialogue_holdout_ids}
SEEDS = (1234, 1, 2)
HOLDOUT_SHARE = 0.1


def read_split(folder, split):
    """``{utterance id: {"text", "emo", "dialogue"}}`` of one MELD csv."""
    with open(os.path.join(folder, f"{split}_sent_emo.csv"), encoding="utf-8") as handle:
        return {f"{split}_{row['Dialogue_ID']}_{row['Utterance_ID']}":
                {"text": row["Utterance"], "emo": row["Emotion"], "dialogue": row["Dialogue_ID"]}
                for row in csv.DictReader(handle)}


def ua_wa(model, vectorizer, entries, classes):
    """UA and WA (%) of the model on ``entries``."""
    ids = sorted(entries)
    predicted = model.predict(vectorizer.transform([entries[u]["text"] for u in ids]))
    truth = [classes.index(entries[u]["emo"]) for u in ids]
    metrics = classification_metrics(truth, [classes.index(p) for p in predicted], classes)
    return metrics["UA"], metrics["WA"]


def main():
    """Runs every hold-out kind and seed and prints the gaps."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meld_folder", required=True)
    args = parser.parse_args()
    train, test = read_split(args.meld_folder, "train"), read_split(args.meld_folder, "test")
    classes = sorted({e["emo"] for e in train.values()})
    for kind, draw in HOLDOUTS.items():
        for seed in SEEDS:
            holdout = draw(train, "emo", HOLDOUT_SHARE, seed)
            rest = {u: e for u, e in train.items() if u not in holdout}
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
            features = vectorizer.fit_transform([rest[u]["text"] for u in sorted(rest)])
            model = LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced")
            model.fit(features, [rest[u]["emo"] for u in sorted(rest)])
            held = ua_wa(model, vectorizer, {u: train[u] for u in holdout}, classes)
            tested = ua_wa(model, vectorizer, test, classes)
            shared = {train[u]["dialogue"] for u in holdout} & {e["dialogue"] for e in rest.values()}
            print(f"{kind:10s} seed {seed:4d}: hold-out {len(holdout)} utterances, {len(shared)} "
                  f"dialogues shared with training; hold-out UA {held[0]:.2f} WA {held[1]:.2f}, "
                  f"test UA {tested[0]:.2f} WA {tested[1]:.2f}; gap UA {held[0] - tested[0]:+.2f} "
                  f"WA {held[1] - tested[1]:+.2f}")


if __name__ == "__main__":
    main()
