"""SpeechBrain inference interfaces for speech, text and multimodal emotion recognition.

One module a job: :mod:`.inputs` (input handling and its flags), :mod:`.results` (result
types), :mod:`.loading` (folders, pretrainers, strict checkpoint loading), and the three
recognisers :mod:`.speech_recognizer`, :mod:`.text_recognizer`, :mod:`.multimodal_recognizer`.
The inference YAMLs that wire them are ``hparams/inference/{speech,text,multimodal}.yaml``.
"""
from mmer_lobes.interfaces.inputs import INPUT_HANDLING, InputHandling, InterfaceError  # noqa: F401
from mmer_lobes.interfaces.loading import FolderPretrainer, load_state_dict_strict  # noqa: F401
from mmer_lobes.interfaces.multimodal_recognizer import MultimodalEmotionRecognizer  # noqa: F401
from mmer_lobes.interfaces.results import BatchPrediction, EmotionPrediction, ModalityPrediction  # noqa: F401
from mmer_lobes.interfaces.speech_recognizer import SpeechEmotionRecognizer  # noqa: F401
from mmer_lobes.interfaces.text_recognizer import TextEmotionRecognizer  # noqa: F401

# The class to load a folder with, by the modalities it holds (export_info.json's "modalities").
RECOGNIZERS = {
    ("speech",): SpeechEmotionRecognizer,
    ("text",): TextEmotionRecognizer,
    ("speech", "text"): MultimodalEmotionRecognizer,
}
