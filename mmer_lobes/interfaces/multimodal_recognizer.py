"""Speech + text emotion recognition with late fusion (``recipes/fuse.py``).

    model = MultimodalEmotionRecognizer.from_hparams(source="models/mmer_fold5")
    out_prob, score, index, text_lab = model.classify_file("clip.wav", text="I can't believe it!")
    prediction = model.predict_file("clip.wav", text="I can't believe it!")
    prediction.label, prediction.speech.label, prediction.text.label, prediction.flags

It holds a :class:`SpeechEmotionRecognizer` and a :class:`TextEmotionRecognizer` (``.speech``,
``.text``) built from the two halves of its YAML, and fuses their log-posteriors as
``log_softmax(fusion(speech, text))`` with the parameters learned on the hold-out
(:class:`mmer_lobes.fusion_rules.LateFusion`). A clip without a transcript (None, or empty)
gets the speech result, flagged ``speech_only_no_text`` / ``speech_only_empty_text``; a
transcript alone (:meth:`MultimodalEmotionRecognizer.predict_text`) gets the text result.
"""
import torch

from mmer_lobes.fusion_rules import LateFusion
from mmer_lobes.interfaces.inputs import InterfaceError, check_batch, read_audio_file
from mmer_lobes.interfaces.loading import FolderInterface
from mmer_lobes.interfaces.results import BatchPrediction
from mmer_lobes.interfaces.speech_recognizer import SpeechEmotionRecognizer
from mmer_lobes.interfaces.text_recognizer import TextEmotionRecognizer


class MultimodalEmotionRecognizer(FolderInterface):
    """Speech + text emotion recognition (see the module docstring).

    Example
    -------
    >>> from mmer_lobes.interfaces.examples import speech_hparams, speech_modules, text_hparams, text_modules
    >>> fusion = {"method": "weighted", "classes": ["neu", "sad"], "weight": 0.5}
    >>> model = MultimodalEmotionRecognizer(
    ...     modules={**speech_modules(), **text_modules()},
    ...     hparams={"speech": speech_hparams(), "text": text_hparams(), "fusion_params": fusion})
    >>> result = model.predict_batch(torch.rand(2, 16000) - 0.5, None, ["", "Oh no."])
    >>> result.decided_by, result.flags
    (['speech', 'fusion:weighted'], [['speech_only_empty_text'], []])
    >>> model.classify_batch(torch.rand(1, 16000) - 0.5, None, ["Oh no."])[0].shape
    torch.Size([1, 2])
    """

    MODULES_NEEDED = SpeechEmotionRecognizer.MODULES_NEEDED + TextEmotionRecognizer.MODULES_NEEDED
    HPARAMS_NEEDED = ["speech", "text", "fusion_params"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        run_opts = {"device": self.device}
        self.speech = SpeechEmotionRecognizer(
            modules={name: self.mods[name] for name in SpeechEmotionRecognizer.MODULES_NEEDED},
            hparams=dict(self.hparams.speech), run_opts=run_opts,
        )
        self.text = TextEmotionRecognizer(
            modules={name: self.mods[name] for name in TextEmotionRecognizer.MODULES_NEEDED},
            hparams=dict(self.hparams.text), run_opts=run_opts,
        )
        self.fusion = LateFusion(dict(self.hparams.fusion_params))
        self.classes = list(self.speech.classes)
        if self.text.classes != self.classes or list(self.fusion.classes) != self.classes:
            raise InterfaceError(
                f"class orders differ: speech {self.classes}, text {self.text.classes}, "
                f"fusion {list(self.fusion.classes)}"
            )
        self.sample_rate = self.speech.sample_rate

    def classify_batch(self, wavs, wav_lens=None, texts=None):
        """``(out_prob, score, index, text_lab)`` of the decisions for a padded batch of
        waveforms with, optionally, one transcript per clip (None or "" for none)."""
        return self.predict_batch(wavs, wav_lens, texts).as_speechbrain()

    def classify_file(self, path, text=None):
        """``(out_prob, score, index, text_lab)`` of one audio file and its transcript."""
        signal, _ = read_audio_file(path, self.sample_rate)
        return self.classify_batch(signal.unsqueeze(0), None, None if text is None else [text])

    def forward(self, wavs, wav_lens=None, texts=None):
        """Runs :meth:`classify_batch`."""
        return self.classify_batch(wavs, wav_lens, texts)

    def predict_text(self, text):
        """The text model's :class:`~mmer_lobes.interfaces.results.EmotionPrediction` of a
        transcript alone."""
        return self.text.predict_text(text)

    def predict_file(self, path, text=None):
        """An :class:`~mmer_lobes.interfaces.results.EmotionPrediction` of one audio file and
        (optionally) its transcript, with the reading flags."""
        signal, flags = read_audio_file(path, self.sample_rate)
        result = self.predict_batch(signal.unsqueeze(0), None, None if text is None else [text]).predictions()[0]
        result.flags = flags + result.flags
        result.duration = signal.shape[0] / self.sample_rate
        return result

    def predict_batch(self, wavs, wav_lens=None, texts=None):
        """A :class:`~mmer_lobes.interfaces.results.BatchPrediction` holding the decisions and
        each modality's log-posteriors (rows of NaN where a modality did not score a clip)."""
        wavs, wav_lens = check_batch(wavs, wav_lens)
        batch = wavs.shape[0]
        texts = [None] * batch if texts is None else list(texts)
        if len(texts) != batch:
            raise InterfaceError(f"{len(texts)} texts for a batch of {batch} clips")
        speech, flags = self.speech.log_posteriors(wavs, wav_lens)
        speech = speech.cpu()
        with_text = [i for i, t in enumerate(texts) if t is not None and str(t).strip()]
        text = torch.full_like(speech, float("nan"))
        final, decided_by = speech.clone(), ["speech"] * batch
        if with_text:
            scores, text_flags = self.text.log_posteriors([texts[i] for i in with_text])
            text[with_text] = scores.cpu()
            fused = self.fusion.log_posteriors(speech[with_text].double().numpy(), text[with_text].double().numpy())
            final[with_text] = torch.from_numpy(fused).float()
            for row, i in enumerate(with_text):
                flags[i].extend(text_flags[row])
                decided_by[i] = f"fusion:{self.fusion.method}"
        for i in set(range(batch)) - set(with_text):
            flags[i].append("speech_only_no_text" if texts[i] is None else "speech_only_empty_text")
        labels = [self.classes[i] for i in final.argmax(dim=1).tolist()]
        return BatchPrediction(list(self.classes), final, labels, decided_by, speech,
                               text if with_text else None, flags)
