"""A ctypes binding of eSpeak NG: find the library, speak a sentence, get 16-bit samples."""

import ctypes
import ctypes.util

import numpy as np

from mmer_lobes.errors import ProjectError

from .settings import ESPEAK_VOLUME


class SynthesiserUnavailable(ProjectError, RuntimeError):
    """Raised when eSpeak NG cannot be found or started (a setup problem, reported on one
    line: the message says how to install it)."""


ESPEAK_INSTALL_HINT = (
    "mini_corpora speaks its corpora with eSpeak NG. Install it with "
    "`pip install espeakng-loader` (ships the library and its data; no root needed), "
    "or install the system library (Debian: `apt-get install libespeak-ng1`)."
)


def find_espeak():
    """Returns (library path, data path or None) of eSpeak NG, preferring espeakng-loader.

    Example
    -------
    >>> import os
    >>> library_path, data_path = find_espeak()
    >>> "espeak" in os.path.basename(library_path)
    True
    """
    try:
        import espeakng_loader
    except ImportError:
        library_path = ctypes.util.find_library("espeak-ng")
        if library_path is None:
            raise SynthesiserUnavailable(ESPEAK_INSTALL_HINT) from None
        return library_path, None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


# espeak_AUDIO_OUTPUT, espeak_PARAMETER and flag values from eSpeak NG's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
_PARAMETER_IDS = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4, "word_gap": 7}
_POSITION_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakSynthesiser:
    """Speaks text with libespeak-ng through ctypes, returning 16-bit samples.

    eSpeak NG is a process-wide singleton that keeps state from one utterance to the next, so
    make one instance per process, and for reproducible bytes synthesise a fixed list of
    utterances in a fresh process.

    Example
    -------
    >>> synthesiser = EspeakSynthesiser()
    >>> samples = synthesiser.synthesise("Hello.", "en-us+m3", rate=175, pitch=50, pitch_range=50)
    >>> samples.dtype, synthesiser.sample_rate, 0.2 < len(samples) / synthesiser.sample_rate < 2.0
    (dtype('int16'), 22050, True)
    """

    def __init__(self):
        library_path, data_path = find_espeak()
        try:
            lib = ctypes.CDLL(library_path)
        except OSError as error:
            raise SynthesiserUnavailable(
                f"cannot load {library_path}: {error}. {ESPEAK_INSTALL_HINT}"
            ) from error
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        # Voices with breath or roughness draw noise from a generator that eSpeak seeds from
        # the clock; espeak_ng_SetRandSeed (eSpeak NG >= 1.52) makes them reproducible.
        self._set_rand_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_rand_seed is not None:
            self._set_rand_seed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = data_path.encode() if data_path else None
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise SynthesiserUnavailable(
                f"eSpeak NG ({library_path}) failed to start with data at {data_path}. "
                + ESPEAK_INSTALL_HINT
            )
        self._lib = lib
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: C holds a pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(num_samples,)).copy())
        return 0  # 0: go on synthesising

    def synthesise(
        self, text, voice, rate, pitch, pitch_range, volume=ESPEAK_VOLUME, seed=0, word_gap=0
    ):
        """Returns the int16 samples of ``text`` spoken by ``voice`` at ``self.sample_rate``.

        ``seed`` seeds the noise of breathy or rough voices (where eSpeak NG allows it).
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        values = {
            "rate": rate,
            "volume": volume,
            "pitch": pitch,
            "pitch_range": pitch_range,
            "word_gap": word_gap,
        }
        for name, value in values.items():
            if self._lib.espeak_SetParameter(_PARAMETER_IDS[name], int(value), 0) != 0:
                raise ValueError(f"eSpeak NG refused {name}={value}")
        if self._set_rand_seed is not None:
            self._set_rand_seed(int(seed) % 2**31)
        self._chunks = []
        encoded = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(
            encoded, len(encoded), 0, _POSITION_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise RuntimeError(
                f"eSpeak NG failed (status {status}) on {text!r} with voice {voice!r}"
            )
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}")
        return np.concatenate(self._chunks)
