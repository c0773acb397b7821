"""The model card (``README.md``) of an exported folder, filled from ``model_card.md``.

The card starts with Hugging Face hub front matter (licence, tags, datasets, and the fold's
test figures as ``model-index`` metrics), then describes the models, the data and protocol,
the fold's results, the input handling, the limits and the safety of loading the folder.
"""
import datetime
import os
from string import Template

import yaml

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_card.md")
CHECKPOINT_FILES = {"encoder": "ResNet34 trunk + pooling", "classifier": "FC layers of the speech model",
                    "text_classifier": "BERT encoder + FC head"}


def _figure(metrics, key):
    value = (metrics or {}).get(key)
    return "n/a" if value is None else f"{value:.2f}"


def _rounded(metrics, key):
    value = (metrics or {}).get(key)
    return None if value is None else round(float(value), 2)


def front_matter(info, license_name):
    """The hub metadata of the card, as a YAML mapping.

    Example
    -------
    >>> info = {"modalities": ["speech"], "synthetic_corpus": True, "fusion": None,
    ...         "speech": {"test_fold": 5, "held_out": "session 5", "corpus": "IEMOCAP",
    ...                    "metrics": {"test": {"UA": 61.0, "WA": 60.5}}}}
    >>> card = yaml.safe_load(front_matter(info, "other"))
    >>> card["tags"][:3], card["model-index"][0]["results"][0]["metrics"][0]["value"], card["language"]
    (['speechbrain', 'emotion-recognition', 'audio-classification'], 61.0, ['en'])
    >>> info["speech"].update(corpus="EmoDB", language="de")
    >>> yaml.safe_load(front_matter(info, "other"))["language"]
    ['de']
    """
    speech, text = "speech" in info["modalities"], "text" in info["modalities"]
    tags = ["speechbrain", "emotion-recognition"] + (["audio-classification"] if speech else []) \
        + (["text-classification"] if text else []) + (["late-fusion"] if info.get("fusion") else []) + ["mmer"]
    part = info.get("speech") or info.get("text")
    dataset = f"synthetic mini-{part['corpus']} (mmer)" if info["synthetic_corpus"] else part["corpus"]
    dataset_id = part["corpus"].split()[0].lower()  # "RAVDESS speech" -> ravdess
    results = []
    for modality, task in (("speech", "audio-classification"), ("text", "text-classification")):
        if info.get(modality):
            results.append((f"{modality} model", task, info[modality]["metrics"].get("test")))
    if info.get("fusion"):
        results.append((f"{info['fusion']['params']['method']} fusion", "audio-classification",
                        info["fusion"]["metrics"].get("test")))
    index = [{
        "name": "mmer " + " + ".join(info["modalities"]),
        "results": [{
            "task": {"type": task, "name": f"Emotion recognition ({name})"},
            "dataset": {"name": f"{dataset}, {part['held_out']} held out", "type": dataset_id},
            "metrics": [{"type": "unweighted-accuracy", "name": "UA", "value": _rounded(figures, "UA")},
                        {"type": "accuracy", "name": "WA", "value": _rounded(figures, "WA")}],
        } for name, task, figures in results],
    }]
    card = {"language": [part.get("language", "en")], "license": license_name, "library_name": "speechbrain", "tags": tags,
            "datasets": [dataset_id], "metrics": ["accuracy", "unweighted-accuracy"], "model-index": index}
    return yaml.safe_dump(card, sort_keys=False, width=100).strip()


def describe_encoder(settings):
    """One sentence on the speech model: its encoder definition's classes and values, and
    the new FC layers.

    Example
    -------
    >>> describe_encoder({"embedding_size": 64, "encoder_definition": {
    ...     "classes": {"compute_features": "KaldiFbank", "mean_var_norm": "InputNormalization",
    ...                 "encoder": "ResNetEncoder"},
    ...     "values": {"sample_rate": 16000, "n_mels": 80, "blocks": [3, 4, 6, 3], "activation": "relu"}}})
    'encoder `ResNetEncoder` (n_mels 80, blocks 3-4-6-3, activation relu) on `KaldiFbank` features with `InputNormalization`, 16000 Hz; new FC layers with a 64-d embedding and the emotion output.'
    """
    definition = settings["encoder_definition"]
    classes, values = definition["classes"], definition["values"]
    shown = ", ".join(f"{key} {'-'.join(map(str, value)) if isinstance(value, list) else value}"
                      for key, value in values.items() if key != "sample_rate")
    network = classes["encoder"] + (f"` around `{classes['embedding_model']}" if "embedding_model" in classes else "")
    return (f"encoder `{network}` ({shown}) on `{classes['compute_features']}` features with "
            f"`{classes['mean_var_norm']}`, {values.get('sample_rate')} Hz; new FC layers with a "
            f"{settings['embedding_size']}-d embedding and the emotion output.")


def model_card(info, settings, license_name="other"):
    """The card's Markdown. ``info`` is the folder's ``export_info.json`` content, ``settings``
    the plain values of the folder's speech and text YAML parts.

    Example
    -------
    >>> info = {"modalities": ["text"], "synthetic_corpus": False, "fusion": None, "classes": ["neu", "sad"],
    ...         "interface_class": "TextEmotionRecognizer", "inference": {"yaml": "hparams/inference/text.yaml"},
    ...         "checkpoints": {"text_classifier": {"error_rate": 0.25}},
    ...         "text": {"test_fold": 5, "held_out": "session 5", "corpus": "IEMOCAP",
    ...                  "protocol": "IEMOCAP, leave one session out",
    ...                  "metrics": {"test": {"UA": 61.0, "WA": 60.5}}, "holdout": "dialogue",
    ...                  "data_folder": "/data/IEMOCAP", "sizes": {"train": 3, "holdout": 1, "test": 2}}}
    >>> card = model_card(info, {"text": {"text_model": "bert-base-uncased", "max_length": 128, "pooling": "cls"}})
    >>> card.startswith("---") and "| text | 61.00 | 60.50 |" in card
    True
    """
    speech, text, fusion = info.get("speech"), info.get("text"), info.get("fusion")
    part = speech or text
    lines = {"models": [], "inputs": [], "limits": [], "results": [], "files": []}
    for name, entry in info["checkpoints"].items():
        lines["files"].append(f"| `{name}.ckpt` | {CHECKPOINT_FILES.get(name, name)}, hold-out error rate "
                              f"{100 * float(entry['error_rate']):.2f} % |")
    if speech:
        arch = settings["speech"]
        lines["models"].append(f"- **speech**: {describe_encoder(arch)} Trained by `{speech.get('mode')}`"
                               + (f" from the speaker encoder `{speech['pretrained_encoder']}`"
                                  if speech.get("pretrained_encoder") else "") + ".")
        lines["results"].append(f"| speech | {_figure(speech['metrics'].get('test'), 'UA')} | "
                                f"{_figure(speech['metrics'].get('test'), 'WA')} |")
        lines["inputs"] += [
            "- Audio: any format soundfile reads; resampled to the model's rate and downmixed to mono "
            "(flags `resampled`, `downmixed`). Clips run in padded batches; the network masks the padding, "
            "so a clip's scores do not depend on its batch.",
            f"- Clips shorter than {arch['min_duration']} s are zero-padded, the padding kept out of "
            f"normalisation and pooling (`padded_short_clip`); clips longer than {arch['max_duration']} s "
            f"are scored on {arch['window_duration']} s windows every {arch['window_hop']} s with averaged "
            "log-posteriors (`windowed_long_clip`).",
            (f"- A clip whose RMS is below {arch['silence_rms']} is flagged `silent_input`; "
             if arch["silence_rms"] > 0 else "- Silence is not checked (`silence_rms: 0`); ")
            + "a wav whose data is shorter than its header declares is flagged `truncated_file`."]
        lines["limits"].append("- The speech model scores whole segments as trained (a few seconds); long "
                               "recordings are windowed, which the model never saw in training.")
    if text:
        tx = settings["text"]
        lines["models"].append(
            f"- **text**: `{tx['text_model']}` fine-tuned with a new FC head (pooling `{tx['pooling']}`, at "
            f"most {tx['max_length']} tokens). The base model is found by its hub id, without network when "
            "the hub cache or the fallback folder holds it.")
        lines["results"].append(f"| text | {_figure(text['metrics'].get('test'), 'UA')} | "
                                f"{_figure(text['metrics'].get('test'), 'WA')} |")
        lines["inputs"].append(f"- Transcripts longer than {tx['max_length']} tokens are truncated (`truncated_text`).")
        lines["limits"].append("- The text model needs the transcript; automatic transcripts with errors "
                               "were not evaluated.")
    if fusion:
        params = fusion["params"]
        detail = f"w1 = {params['weight']}" if "weight" in params else "learned on the hold-out"
        lines["models"].append(f"- **fusion**: `{params['method']}` late fusion of the log-posteriors ({detail}), "
                               "fitted on the hold-out scores (`fusion.json`).")
        lines["results"].append(f"| {params['method']} fusion | {_figure(fusion['metrics'].get('test'), 'UA')} | "
                                f"{_figure(fusion['metrics'].get('test'), 'WA')} |")
        lines["inputs"].append("- A clip without a transcript, or with an empty one, gets the speech result "
                               "(`speech_only_no_text`, `speech_only_empty_text`).")
        lines["files"].append("| `fusion.json` | the fusion parameters |")
    if info["synthetic_corpus"]:
        lines["limits"].insert(0, "- Trained on synthetic speech and scripted sentences: no claim on real data.")
    lines["limits"].append(
        f"- Trained on one fold of {'mini-' if info['synthetic_corpus'] else ''}{part['corpus']}, "
        f"{len(info['classes'])} classes only; other emotions are forced into these, and other corpora, "
        "languages, recording conditions and speaking styles are untested.")
    sizes = part.get("sizes", {})
    protocol = [
        f"- Corpus: `{part.get('data_folder')}`" + (" (mmer's synthetic mini-IEMOCAP)" if info["synthetic_corpus"] else "") + ".",
        f"- Tested on {part['held_out']} of {part['protocol']}, trained on the rest; "
        f"hold-out `{part.get('holdout')}` for checkpoint selection" + (" and fusion" if fusion else "") + ".",
        f"- Utterances: {sizes.get('train')} train, {sizes.get('holdout')} hold-out, {sizes.get('test')} test."]
    warning = ("\n> **Warning: trained on a synthetic corpus.** The training data came from mmer's built-in "
               "mini-IEMOCAP (speech synthesised with espeak-ng, scripted sentences). This model demonstrates "
               "the pipeline; it does not recognise emotions in real speech.\n") if info["synthetic_corpus"] else ""
    usage = {"speech": 'out_prob, score, index, text_lab = model.classify_file("clip.wav")',
             "text": 'out_prob, score, index, text_lab = model.classify_batch(["the transcript"])'}
    usage = usage.get("+".join(info["modalities"]),
                      'out_prob, score, index, text_lab = model.classify_file("clip.wav", text="the transcript")\n'
                      'prediction = model.predict_file("clip.wav", text="the transcript")')
    cli = {"speech": "clip.wav", "text": '--text "..."'}.get("+".join(info["modalities"]), 'clip.wav --text "..."')
    with open(TEMPLATE, encoding="utf-8") as handle:
        template = Template(handle.read())
    return template.substitute(
        front_matter=front_matter(info, license_name),
        title=" + ".join(info["modalities"]) + (f", {fusion['params']['method']} fusion" if fusion else ""),
        classes=", ".join(f"`{c}`" for c in info["classes"]), date=datetime.date.today().isoformat(),
        warning=warning, classname=info["interface_class"], usage=usage, cli=cli,
        models="\n".join(lines["models"]), protocol="\n".join(protocol), results="\n".join(lines["results"]),
        inputs="\n".join(lines["inputs"]), limits="\n".join(lines["limits"]),
        inference_yaml=info["inference"]["yaml"], files="".join(line + "\n" for line in lines["files"]),
    )
