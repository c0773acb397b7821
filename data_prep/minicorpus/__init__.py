"""The generator of the built-in corpora (mini-IEMOCAP and mini-VoxCeleb), one job per module.

* ``settings``: every parameter of the corpora; ``sentences`` (+ ``sentences.json``): the
  sentence pools;
* ``sampling``: an utterance's plan and speaker, and the draws of its prosody and sentence;
* ``planning``: every random choice of both corpora, in a fixed order;
* ``espeak``: the ctypes binding of eSpeak NG;
* ``render``: synthesis and DSP into 16 kHz wavs, in fresh processes;
* ``writers``: IEMOCAP's and VoxCeleb's text files;
* ``driver``: ``make_mini_corpora``, which runs it all and swaps the result into place.

The command line and the names other code imports are in ``data_prep/mini_corpora.py``.
"""
