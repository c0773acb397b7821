"""Loading an interface from a folder of checkpoints, as the inference YAMLs describe it.

``hparams/inference/{speech,text,multimodal}.yaml`` name the files of a folder through a
:class:`FolderPretrainer` (bare file names, read inside the folder, so that a folder can be
moved or shared), load every checkpoint strictly (:func:`load_state_dict_strict`) and the
fusion parameters as JSON (:func:`load_json_into`). :class:`FolderInterface` is the base of
the three recognisers: it loads a local folder in place (nothing is linked or copied) with the
folder's own ``hyperparams.yaml`` or any inference YAML, and reads the class order from
``label_encoder.txt``.
"""
import json
import os
import sys

import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.parameter_transfer import Pretrainer

from mmer_lobes.interfaces.inputs import InterfaceError

# An exported folder's hyperparams.yaml builds its objects from this module of the folder.
FOLDER_MODULE = "custom_interface"


class FolderPretrainer(Pretrainer):
    """A SpeechBrain ``Pretrainer`` whose ``paths`` may be bare file names, read inside the
    folder given as ``source`` to ``from_hparams`` / ``foreign_class``.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> linear = torch.nn.Linear(2, 1)
    >>> torch.save(linear.state_dict(), os.path.join(folder, "weights.ckpt"))
    >>> pretrainer = FolderPretrainer(loadables={"model": torch.nn.Linear(2, 1)},
    ...                               paths={"model": "weights.ckpt"})
    >>> _ = pretrainer.collect_files(default_source=folder)
    >>> pretrainer.load_collected()
    >>> torch.equal(pretrainer.loadables["model"].weight, linear.weight)
    True
    """

    def collect_files(self, default_source=None, **kwargs):
        """Resolves bare file names against ``default_source``, then collects as usual."""
        if default_source is not None and isinstance(default_source, (str, os.PathLike)):
            for name, path in list(self.paths.items()):
                if isinstance(path, str) and "/" not in path and os.sep not in path:
                    self.paths[name] = f"{os.fspath(default_source).rstrip('/')}/{path}"
        return super().collect_files(default_source=default_source, **kwargs)


class CombinedPretrainer:
    """Several pretrainers used as one (the multimodal YAML combines the speech and the text
    model's own pretrainers with the fusion parameters').

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> torch.save(torch.nn.Linear(2, 1).state_dict(), os.path.join(folder, "a.ckpt"))
    >>> torch.save(torch.nn.Linear(3, 1).state_dict(), os.path.join(folder, "b.ckpt"))
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(3, 1)
    >>> both = CombinedPretrainer(FolderPretrainer(loadables={"a": a}, paths={"a": "a.ckpt"}),
    ...                           FolderPretrainer(loadables={"b": b}, paths={"b": "b.ckpt"}))
    >>> sorted(both.collect_files(default_source=folder))
    ['a', 'b']
    >>> both.load_collected()
    """

    def __init__(self, *pretrainers):
        self.pretrainers = pretrainers

    def set_collect_in(self, path):
        """Sets where every pretrainer collects its files."""
        for pretrainer in self.pretrainers:
            pretrainer.set_collect_in(path)

    def collect_files(self, default_source=None, **kwargs):
        """Collects the files of every pretrainer; returns ``{name: path}`` of them all."""
        paths = {}
        for pretrainer in self.pretrainers:
            paths.update(pretrainer.collect_files(default_source=default_source, **kwargs))
        return paths

    def load_collected(self):
        """Loads the collected files into every pretrainer's loadables."""
        for pretrainer in self.pretrainers:
            pretrainer.load_collected()


def load_state_dict_strict(module, path):
    """Pretrainer hook: loads a ``state_dict`` with ``torch.load(weights_only=True)`` and
    ``strict=True``, so a checkpoint that does not fit the architecture of the YAML is an
    error (SpeechBrain's default transfer only warns).

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.ckpt")
    >>> torch.save(torch.nn.Linear(2, 1).state_dict(), path)
    >>> load_state_dict_strict(torch.nn.Linear(3, 1), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.inputs.InterfaceError: checkpoint .../m.ckpt does not fit Linear: ...
    """
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        reason = " ".join(str(error).split())[:300]
        raise InterfaceError(f"checkpoint {path} does not fit {type(module).__name__}: {reason}") from None


def load_json_into(mapping, path):
    """Pretrainer hook: fills ``mapping`` (a dict of the YAML) with a JSON object's keys.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "fusion.json")
    >>> with open(path, "w") as handle:
    ...     _ = handle.write('{"method": "weighted", "weight": 0.9}')
    >>> params = {}
    >>> load_json_into(params, path)
    >>> params["weight"]
    0.9
    """
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (OSError, ValueError) as error:
        raise InterfaceError(f"cannot read {path}: {error}") from None
    if not isinstance(values, dict):
        raise InterfaceError(f"{path} holds no JSON object")
    mapping.clear()
    mapping.update(values)


def _use_folder_module(folder):
    """Makes the ``custom_interface.py`` of an exported folder importable, as SpeechBrain's
    ``foreign_class`` does, so that its ``hyperparams.yaml`` can build its objects; a module
    of that name imported from another folder is forgotten first. Returns whether ``folder``
    was added to ``sys.path`` (the caller removes it once the YAML is loaded)."""
    path = os.path.join(folder, f"{FOLDER_MODULE}.py")
    if not os.path.isfile(path):
        return False
    loaded = sys.modules.get(FOLDER_MODULE)
    if loaded is not None and os.path.realpath(getattr(loaded, "__file__", "") or "") != os.path.realpath(path):
        del sys.modules[FOLDER_MODULE]
    if folder in sys.path:
        return False
    sys.path.insert(0, folder)
    return True


def _hparams_path(folder, hparams_file):
    """``hparams_file`` inside ``folder``, or as given (an inference YAML of the project)."""
    inside = os.path.join(folder, hparams_file)
    if os.path.isfile(inside):
        return inside
    if os.path.isfile(hparams_file):
        return os.path.abspath(hparams_file)
    raise InterfaceError(f"{folder} holds no {hparams_file}: not an interface folder")


class FolderInterface(Pretrained):
    """Base of the recognisers: in-place loading of local folders (:meth:`from_hparams`).

    Example
    -------
    >>> import tempfile
    >>> FolderInterface.from_hparams(source=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.inputs.InterfaceError: ... holds no hyperparams.yaml: not an interface folder
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        missing = [name for name in self.MODULES_NEEDED if name not in self.mods]
        if missing:  # SpeechBrain checks HPARAMS_NEEDED only
            raise InterfaceError(f"{type(self).__name__} needs the module(s) {', '.join(missing)}, "
                                 "which the interface's hyperparams do not define")

    @classmethod
    def from_hparams(cls, source, hparams_file="hyperparams.yaml", overrides=None, savedir=None, **kwargs):
        """Loads an interface from ``source``.

        A local folder given without ``savedir`` is loaded in place and nothing is written.
        ``hparams_file`` is the folder's own (an exported folder's ``hyperparams.yaml``) or the
        path of an inference YAML (``hparams/inference/speech.yaml``) to run against the
        folder's checkpoints. Other sources, or an explicit ``savedir``, go to SpeechBrain.
        """
        if savedir is not None or not isinstance(source, (str, os.PathLike)) or not os.path.isdir(source):
            return super().from_hparams(source, hparams_file=hparams_file, overrides=overrides or {},
                                        savedir=savedir, **kwargs)
        folder = os.path.abspath(os.fspath(source))
        path = _hparams_path(folder, hparams_file)
        added = _use_folder_module(folder)
        try:
            with open(path, encoding="utf-8") as handle:
                hparams = load_hyperpyyaml(handle, overrides or {})
        finally:
            if added:
                sys.path.remove(folder)
        pretrainer = hparams.get("pretrainer")
        if pretrainer is None:
            raise InterfaceError(f"{path} defines no pretrainer: it loads no checkpoint")
        pretrainer.set_collect_in(None)
        pretrainer.collect_files(default_source=folder)
        pretrainer.load_collected()
        return cls(modules=hparams["modules"], hparams=hparams, **kwargs)


def label_order(label_encoder, n_classes=None):
    """The class names of a loaded ``label_encoder.txt`` in score order, checked against the
    model's number of outputs.

    Example
    -------
    >>> from mmer_lobes.interfaces.examples import label_encoder
    >>> label_order(label_encoder(["neu", "sad"]), 2)
    ['neu', 'sad']
    >>> label_order(label_encoder(["neu", "sad"]), 4)
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.inputs.InterfaceError: label_encoder.txt holds 2 classes ['neu', 'sad'], the model has 4 outputs
    """
    classes = [str(label_encoder.ind2lab[i]) for i in range(len(label_encoder))]
    if not classes or (n_classes is not None and len(classes) != int(n_classes)):
        raise InterfaceError(
            f"label_encoder.txt holds {len(classes)} classes {classes}, the model has {n_classes} outputs"
        )
    return classes
