#!/usr/bin/env python3
"""Exports trained fold models as a SpeechBrain interface folder.

    python recipes/export.py hparams/export.yaml --speech_folder results/ser/finetune/fold5 \\
        --text_folder results/bert_text/fold5 --fusion_folder results/fusion/fold5/weighted \\
        --output_folder models/mmer_fold5

``--speech_folder`` alone exports a speech model, ``--text_folder`` alone a text model; both
need ``--fusion_folder`` (one method's folder of ``recipes/fuse.py``). The folder's
``hyperparams.yaml`` is ``hparams/inference/{speech,text,multimodal}.yaml`` with the trained
folds' values of the keys named in ``hparams/export.yaml`` as overrides, every include resolved
(HyperPyYAML's ``resolve_references``) and its project objects pointed at the folder's
``custom_interface.py`` (:mod:`mmer_lobes.exporting.bundle`). The recipe copies the checkpoint
with the lowest hold-out ``error_rate`` (as the recipes evaluate) and the label encoder, writes
the fusion parameters (``fusion.json``), the model card (:mod:`mmer_lobes.exporting.model_card`)
and ``export_info.json``, loads the staged folder and scores a dummy input (``--check=False``
skips this), and only then puts it in place; an existing interface folder is replaced only with
``--overwrite=True``. ``--onnx=True`` also writes the speech network as ``speech.onnx``
(features -> log-posteriors, dynamic batch and time; :mod:`mmer_lobes.onnx_speech`), checked
against PyTorch with onnxruntime, for ``mmer-predict --backend onnx``. Errors end the script with
one line and exit code 2.
"""
import datetime
import json
import os
import shutil
import sys
import tempfile

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml

from data_prep.mini_corpora import CORPUS_MARKER
from mmer_lobes.folds import FOLD_RECORD
from mmer_lobes.checkpoints import CompleteCheckpointer
from mmer_lobes.encoder_folders import DEFINITION_FILE
from mmer_lobes.errors import ProjectError, one_line, run_script
from mmer_lobes.exporting.bundle import bundle_source, bundled_names, retarget_tags
from mmer_lobes.exporting.model_card import model_card
from mmer_lobes.files import swap_in_folder
from mmer_lobes.fusion_rules import LateFusion
from mmer_lobes.hparams_files import (HparamsFileError, compose_yaml, parse_yaml_tree, plain, plain_values,
                                      read_yaml_file, without_blocks)
from mmer_lobes.interfaces import RECOGNIZERS, InputHandling, InterfaceError
from mmer_lobes.onnx_speech import export_speech_onnx

INFERENCE_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hparams", "inference")
CLASS_FILE = "label_encoder.txt"
ONNX_FILE = "speech.onnx"
INFO_FILE = "export_info.json"
PATH_KEYS = ("speech_folder", "text_folder", "fusion_folder", "output_folder", "text_model")


class ExportError(ProjectError, ValueError):
    """The inputs cannot be exported (missing, inconsistent or unreadable)."""


def read_yaml_values(path):
    """A YAML file read without building any object (ruamel round-trip: tags kept)."""
    try:
        return read_yaml_file(path)
    except HparamsFileError as error:
        raise ExportError(f"{error}: is it a recipe output folder?") from None


def read_json(path, required=True):
    """A JSON file, or None when absent and not required."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        if required:
            raise ExportError(f"{path} not found") from None
        return None
    except (OSError, ValueError) as error:
        raise ExportError(f"cannot read {path}: {error}") from None


def best_checkpoint(folder, names):
    """The complete checkpoint with the lowest ``error_rate``; checks that it holds ``names``."""
    save_folder = os.path.join(folder, "save")
    checkpoint = CompleteCheckpointer(save_folder).find_checkpoint(min_key="error_rate") \
        if os.path.isdir(save_folder) else None
    if checkpoint is None:
        raise ExportError(f"no complete checkpoint with an error_rate in {save_folder} (has the recipe finished an epoch?)")
    missing = [name for name in names if name not in checkpoint.paramfiles]
    if missing:
        raise ExportError(f"checkpoint {checkpoint.path} holds no {missing[0]}.ckpt (it has: {sorted(checkpoint.paramfiles)})")
    return checkpoint


def read_classes(path):
    """The class order of a SpeechBrain ``CategoricalEncoder`` file."""
    from speechbrain.dataio.encoder import CategoricalEncoder

    encoder = CategoricalEncoder()
    try:
        encoder.load(path)
    except Exception as error:  # missing or malformed literal file
        raise ExportError(f"cannot read label encoder {path}: {one_line(error)}") from None
    return [encoder.ind2lab[i] for i in range(len(encoder))]


def metrics_of(folder):
    """``{split: metrics}`` of the ``metrics_<split>.json`` files of a recipe or fusion folder."""
    found = {split: read_json(os.path.join(folder, f"metrics_{split}.json"), required=False)
             for split in ("holdout", "test")}
    return {split: {k: values.get(k) for k in ("UA", "WA", "recall", "confusion", "classes")}
            for split, values in found.items() if values}


def read_part(kind, folder, keys, files, overrides):
    """A trained fold: its values of ``keys``, best checkpoint, classes and summary."""
    path = os.path.join(folder, "hyperparams.yaml")
    data = read_yaml_values(path)
    missing = [key for key in keys if key not in data]
    if missing:
        raise ExportError(f"{path} has no {', '.join(missing)}: is it a recipes/{'train' if kind == 'speech' else 'train_text'}.py output?")
    values = {key: plain(data[key], key, path) for key in keys if key not in overrides}
    checkpoint = best_checkpoint(folder, files)
    # the speech recipe keeps it beside its checkpoints, the text recipe in its output folder
    class_file = next((p for p in (os.path.join(os.path.dirname(str(checkpoint.path)), CLASS_FILE),
                                   os.path.join(folder, CLASS_FILE)) if os.path.isfile(p)), os.path.join(folder, CLASS_FILE))
    classes = read_classes(class_file)
    sizes = {split: len(read_json(os.path.join(folder, "fold", f"{split}.json"), required=False) or {})
             for split in ("train", "holdout", "test")}
    summary = {key: plain(data.get(key), key, path) for key in
               ("data_folder", "test_fold", "holdout", "holdout_share", "fold_seed", "mode", "pretrained_encoder")}
    fold = read_json(os.path.join(folder, "fold", FOLD_RECORD), required=False)
    if fold:
        summary.update(fold=fold, corpus=fold["corpus"], protocol=fold["protocol"], held_out=fold["held_out"],
                       language=fold["language"])
    elif data.get("test_session") is not None:  # trained before fold.json, when every corpus was IEMOCAP
        summary.update(fold=None, test_fold=plain(data.get("test_session"), "test_session", path), corpus="IEMOCAP",
                       language="en",
                       protocol="IEMOCAP, leave one session out", held_out=f"session {data['test_session']}")
    else:
        raise ExportError(f"{folder} holds no fold/{FOLD_RECORD}: is it a recipes/"
                          f"{'train' if kind == 'speech' else 'train_text'}.py output?")
    data_folder = summary["data_folder"]
    summary.update(folder=os.path.abspath(folder), sizes=sizes, metrics=metrics_of(folder),
                   synthetic_corpus=bool(data_folder) and os.path.isfile(os.path.join(str(data_folder), CORPUS_MARKER)))
    nodes, definition_file = {}, None
    if kind == "speech":  # the encoder definition the fold was trained with (recipes/train.py writes it)
        definition_file = os.path.join(folder, DEFINITION_FILE)
        if not os.path.isfile(definition_file):
            raise ExportError(f"{folder} holds no {DEFINITION_FILE} (the encoder definition of the fold): "
                              "it was trained before encoder definitions; train it again")
        nodes["encoder_definition"] = read_yaml_values(definition_file)
    return {"kind": kind, "values": {**values, **overrides, "n_classes": len(classes)}, "classes": classes,
            "nodes": nodes, "definition_file": definition_file and os.path.abspath(definition_file),
            "class_file": class_file, "checkpoint": checkpoint, "summary": summary,
            "files": {target: checkpoint.paramfiles[name] for name, target in files.items()}}


def read_fusion(folder, speech_folder, text_folder):
    """One fusion method's fitted parameters; checks that it fused these two folds."""
    params_path = os.path.join(folder, "fusion_params.json")
    params = (read_json(params_path) or {}).get("params")
    try:
        LateFusion(params if isinstance(params, dict) else {})
    except ProjectError as error:
        raise ExportError(f"{params_path}: invalid fusion parameters: {error}") from None
    summary = read_json(os.path.join(os.path.dirname(os.path.abspath(folder)), "summary.json"), required=False) or {}
    for key, given in (("speech_folder", speech_folder), ("text_folder", text_folder)):
        recorded = summary.get(key)
        if recorded and os.path.exists(recorded) and os.path.realpath(recorded) != os.path.realpath(given):
            raise ExportError(f"the fusion in {folder} was fitted on the scores of {recorded}, not of --{key} {given}")
    return {"folder": os.path.abspath(folder), "params": params, "metrics": metrics_of(folder)}


def inference_yaml(parts):
    """The inference YAML to export, resolved; its path, its overrides and the interface class.

    Each part is its ``hparams/inference/<kind>.yaml`` with the part's values as overrides and
    its nodes (the speech fold's encoder definition) in place; a speech + text interface is
    ``multimodal.yaml`` with the two resolved parts in place of its includes.
    """
    modalities = tuple(part["kind"] for part in parts)
    name = "multimodal" if len(parts) == 2 else modalities[0]
    texts = {}
    for part in parts:  # nested overrides are not checked by HyperPyYAML: check them here
        path = os.path.join(INFERENCE_FOLDER, f"{part['kind']}.yaml")
        unknown = sorted(set(part["values"]) - set(read_yaml_values(path)))
        if unknown:
            raise ExportError(f"hparams/inference/{part['kind']}.yaml has no key {unknown[0]} (from {part['kind']}_keys or --{part['kind']}_overrides)")
        try:
            texts[part["kind"]] = compose_yaml(path, part["values"], part["nodes"])
        except HparamsFileError as error:
            raise ExportError(str(error)) from None
    path = os.path.join(INFERENCE_FOLDER, f"{name}.yaml")
    texts = {kind: without_blocks(text) for kind, text in texts.items()}
    resolved = compose_yaml(path, nodes={kind: parse_yaml_tree(text) for kind, text in texts.items()}) \
        if name == "multimodal" else texts[name]
    overrides = {p["kind"]: p["values"] for p in parts} if name == "multimodal" else parts[0]["values"]
    return path, resolved, overrides, RECOGNIZERS[modalities]


def encoder_summary(definition):
    """The class of each object of an encoder definition tree, and its plain values."""
    classes = {key: str(node.tag.value).rsplit(".", 1)[-1] for key, node in definition.items()
               if getattr(getattr(node, "tag", None), "value", None)}
    return {"classes": classes, "values": plain_values(definition)}


def write_folder(staging, parts, fusion, settings):
    """Writes every file of the interface folder into ``staging``; returns the export info."""
    path, resolved, overrides, recognizer = inference_yaml(parts)
    source = bundle_source()
    header = (f"# mmer interface, written by recipes/export.py on {datetime.date.today().isoformat()} from\n"
              f"# hparams/inference/{os.path.basename(path)} with the overrides and the encoder definition in {INFO_FILE}.\n"
              "# SAFETY: HyperPyYAML builds the objects it names. Only load folders you trust.\n")
    with open(os.path.join(staging, "hyperparams.yaml"), "w", encoding="utf-8") as handle:
        handle.write(header + retarget_tags(resolved, bundled_names(source)))
    with open(os.path.join(staging, "custom_interface.py"), "w", encoding="utf-8") as handle:
        handle.write(source)
    checkpoints = {}
    for part in parts:
        for name, origin in part["files"].items():
            state = torch.load(origin, map_location="cpu", weights_only=True)  # refuse pickled objects
            if not isinstance(state, dict) or not state:
                raise ExportError(f"{origin} holds no state_dict")
            shutil.copyfile(origin, os.path.join(staging, f"{name}.ckpt"))
            checkpoints[name] = {"from": os.path.abspath(str(origin)), "error_rate": part["checkpoint"].meta.get("error_rate")}
    shutil.copyfile(parts[0]["class_file"], os.path.join(staging, CLASS_FILE))
    if fusion:
        with open(os.path.join(staging, "fusion.json"), "w", encoding="utf-8") as handle:
            json.dump(fusion["params"], handle, indent=2)
    info = {
        "classes": parts[0]["classes"], "modalities": [p["kind"] for p in parts],
        "interface_class": recognizer.__name__, "exported": datetime.datetime.now().isoformat(timespec="seconds"),
        "inference": {"yaml": f"hparams/inference/{os.path.basename(path)}", "overrides": overrides,
                      "encoder_definition": next((p["definition_file"] for p in parts if p["kind"] == "speech"), None)},
        "checkpoints": checkpoints, **{p["kind"]: p["summary"] for p in parts}, "fusion": fusion,
        "synthetic_corpus": any(p["summary"]["synthetic_corpus"] for p in parts),
    }
    loaded = parse_yaml_tree(resolved)
    card_settings = {p["kind"]: plain_values(loaded[p["kind"]] if len(parts) == 2 else loaded) for p in parts}
    if "speech" in card_settings:
        speech = loaded["speech"] if len(parts) == 2 else loaded
        card_settings["speech"]["encoder_definition"] = encoder_summary(speech["encoder_definition"])
    if "speech" in card_settings:  # checked here too, for --check=False
        try:
            InputHandling.from_hparams(card_settings["speech"])
        except InterfaceError as error:
            raise ExportError(f"the input handling of the speech model: {error}") from None
    with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(model_card(info, card_settings, settings["model_license"]))
    with open(os.path.join(staging, INFO_FILE), "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2, default=str)
        handle.write("\n")
    return info, recognizer


def check_interface(folder, recognizer, modalities):
    """Loads the folder as its users will and scores a dummy input."""
    try:
        model = recognizer.from_hparams(source=folder, run_opts={"device": "cpu"})
        wavs = torch.randn(1, 16000) * 0.01
        scores = (model.classify_batch(["hello"]) if modalities == ["text"] else
                  model.classify_batch(wavs, None, ["hello"]) if len(modalities) == 2 else model.classify_batch(wavs))[0]
    except Exception as error:  # any failure to load or run the folder
        raise ExportError(f"the exported folder does not load and run: {one_line(error)[:400]}") from None
    if not torch.isfinite(scores).all():
        raise ExportError("the exported model gives non-finite scores on a dummy input")


def write_onnx(folder, recognizer, info):
    """Writes the speech network of the staged ``folder`` as :data:`ONNX_FILE` (checked
    against PyTorch by :func:`~mmer_lobes.onnx_speech.export_speech_onnx`) and records it in
    the folder's export info."""
    if "speech" not in info["modalities"]:
        raise ExportError("--onnx exports the speech network: give --speech_folder")
    try:
        model = recognizer.from_hparams(source=folder, run_opts={"device": "cpu"})
        speech = getattr(model, "speech", model)
        with torch.no_grad():
            n_mels = speech.mods.compute_features(torch.zeros(1, speech.sample_rate)).shape[-1]
        export_speech_onnx(speech.mods, os.path.join(folder, ONNX_FILE), n_mels)
    except ProjectError as error:
        raise ExportError(f"cannot write {ONNX_FILE}: {error}") from None
    info["onnx"] = {"file": ONNX_FILE, "inputs": "features (batch, time, n_mels), lengths (batch,)",
                    "output": "log_posteriors (batch, classes)", "n_mels": int(n_mels)}
    with open(os.path.join(folder, INFO_FILE), "w", encoding="utf-8") as handle:
        json.dump(info, handle, indent=2, default=str)
        handle.write("\n")


def export(settings):
    """Builds the interface folder; returns its path."""
    speech_folder, text_folder, fusion_folder = (settings[k] for k in ("speech_folder", "text_folder", "fusion_folder"))
    if not (speech_folder or text_folder):
        raise ExportError("give --speech_folder and/or --text_folder")
    for key in ("speech_folder", "text_folder", "fusion_folder"):
        if settings[key] and not os.path.isdir(settings[key]):
            raise ExportError(f"--{key} {settings[key]} is not a folder")
    if bool(speech_folder and text_folder) != bool(fusion_folder):
        raise ExportError("a speech + text interface needs --fusion_folder <fuse.py output>/<method>, "
                          "and --fusion_folder needs both --speech_folder and --text_folder")
    text_overrides = dict(settings["text_overrides"])
    if settings["text_model"]:
        model = settings["text_model"]
        text_overrides["text_model"] = os.path.abspath(model) if os.path.exists(model) else model
    parts = []
    if speech_folder:
        parts.append(read_part("speech", speech_folder, settings["speech_keys"],
                               {"encoder": "encoder", "classifier": "classifier"}, dict(settings["speech_overrides"])))
    if text_folder:
        parts.append(read_part("text", text_folder, settings["text_keys"], {"model": "text_classifier"}, text_overrides))
    fusion = read_fusion(fusion_folder, speech_folder, text_folder) if fusion_folder else None
    classes = parts[0]["classes"]
    if any(part["classes"] != classes for part in parts) or (fusion and list(fusion["params"].get("classes", [])) != classes):
        raise ExportError(f"class orders differ: {[p['classes'] for p in parts]}"
                          + (f", fusion {fusion['params'].get('classes')}" if fusion else ""))
    folds = [part["summary"]["fold"] or {"held_out": part["summary"]["held_out"]} for part in parts]
    if any(fold != folds[0] for fold in folds):
        raise ExportError(f"the speech and the text folds were cut differently: {folds}")

    output = os.path.abspath(settings["output_folder"])
    if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
        if not os.path.isfile(os.path.join(output, INFO_FILE)):
            raise ExportError(f"--output_folder {output} exists and is not an interface folder; choose another")
        if not settings["overwrite"]:
            raise ExportError(f"{output} already holds an interface; pass --overwrite=True to replace it")
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(output)}.")
    try:
        info, recognizer = write_folder(staging, parts, fusion, settings)
        if settings["check"]:
            check_interface(staging, recognizer, info["modalities"])
        if settings.get("onnx"):
            write_onnx(staging, recognizer, info)
        os.chmod(staging, 0o755)
        swap_in_folder(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


def main(argv=None):
    """Command-line entry point (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        raise ExportError("usage: python recipes/export.py hparams/export.yaml [--speech_folder DIR] "
                          "[--text_folder DIR] [--fusion_folder DIR] --output_folder DIR [--key value ...]")
    hparams_file, _, overrides = sb.parse_arguments(argv)
    try:
        with open(hparams_file, encoding="utf-8") as handle:
            settings = load_hyperpyyaml(handle, overrides)
    except OSError as error:
        raise ExportError(f"cannot read {hparams_file}: {error.strerror}") from None
    except (KeyError, ValueError) as error:
        raise ExportError(f"{hparams_file}: {one_line(error)}") from None
    for key in PATH_KEYS:  # a folder named like a number is read as one by YAML
        if settings.get(key) is not None:
            settings[key] = str(settings[key])
    if not settings.get("output_folder"):
        raise ExportError("--output_folder is required")
    print(f"interface written to {export(settings)}")


if __name__ == "__main__":
    sys.exit(run_script(main, "export.py"))
