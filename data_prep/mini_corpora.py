"""Synthesises the two built-in corpora: mini-IEMOCAP and mini-VoxCeleb.

Nobody can download IEMOCAP or VoxCeleb here, so every recipe of this project runs on two
small corpora that this script speaks with eSpeak NG, in the real directory layouts and file
formats (see DESIGN.md, sections 3 and 5):

* ``<out>/IEMOCAP_full_release``: 5 sessions x 2 speakers (one female and one male voice per
  session), several dialogs per session, ``EmoEvaluation`` and ``transcriptions`` files in
  IEMOCAP's formats (including ``xxx``/``fru``/``sur`` labels that a prepare script must filter,
  transcription lines without an utterance id and a latin-1 byte), and 16 kHz mono wavs.
  Emotion is carried imperfectly by both channels: prosody (speaking rate, pitch level, pitch
  range, loudness) is drawn from overlapping per-class distributions on top of each speaker's
  own baseline, and the text from per-class sentence pools where a share of every class's
  sentences is lexically neutral or borrowed from another class. Text and prosody are drawn
  independently given the class, so the two modalities err independently and fusion helps.
* ``<out>/VoxCeleb1``: ``wav/<spk>/<video>/<nnnnn>.wav`` for many synthetic speakers (voice
  variant x accent x pitch x rate), none of them a mini-IEMOCAP voice, with emotionally neutral
  prosody, plus the trial list ``veri_test2.txt`` over held-out trial speakers.

Generation is seeded and byte-for-byte deterministic. eSpeak NG keeps state between
utterances inside one process, so utterances are synthesised in fixed batches, each in a fresh
worker process: the pool's scheduling never changes a byte. Everything is written into a
temporary folder that is renamed into place at the end, and a stamp file written last marks a
complete corpus, so a crash never leaves a half-written corpus behind.

Usage
-----
    python data_prep/mini_corpora.py --out data --seed 0

Authors
 * mmer contributors 2025
"""

import argparse
import os
import sys

try:
    import data_prep.minicorpus  # noqa: F401
except ImportError:  # run as a script from a checkout that is not pip-installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The generator lives in data_prep/minicorpus/, one job per module; this module keeps the
# command line and every name that other code imports from data_prep.mini_corpora.
from data_prep.minicorpus.driver import (  # noqa: E402,F401
    CorpusFolderTaken,
    make_mini_corpora,
    print_summary,
    summarise,
)
from data_prep.minicorpus.espeak import (  # noqa: E402,F401
    ESPEAK_INSTALL_HINT,
    EspeakSynthesiser,
    SynthesiserUnavailable,
    find_espeak,
)
from data_prep.minicorpus.planning import plan_mini_iemocap, plan_mini_voxceleb  # noqa: E402,F401
from data_prep.minicorpus.render import (  # noqa: E402,F401
    render_utterance,
    resample_with_channel,
    synthesise_batch,
    synthesise_in_fresh_processes,
)
from data_prep.minicorpus.sampling import (  # noqa: E402,F401
    IemocapTurn,
    SpeakerVoice,
    UtterancePlan,
    sample_emotion_prosody,
    sample_emotion_sentence,
)
from data_prep.minicorpus.sentences import (  # noqa: E402,F401
    AMBIGUOUS_SENTENCES,
    EMOTION_SENTENCES,
    LATIN1_SENTENCE,
    load_sentences,
)
from data_prep.minicorpus.settings import *  # noqa: E402,F401,F403  (every parameter)
from data_prep.minicorpus.settings import DEFAULT_NUM_WORKERS  # noqa: E402
from data_prep.minicorpus.writers import (  # noqa: E402,F401
    format_emo_evaluation,
    format_transcription,
    write_iemocap_text_files,
    write_voxceleb_trials,
)
from mmer_lobes.errors import run_script  # noqa: E402


def main(argv=None):
    """Command line: ``python data_prep/mini_corpora.py --out DIR [--seed N] [--workers N]``.

    ``argv`` defaults to ``sys.argv[1:]``. A missing eSpeak NG (:class:`SynthesiserUnavailable`)
    or an output folder holding a corpus this script did not write (:class:`CorpusFolderTaken`)
    are :class:`~mmer_lobes.errors.ProjectError` s, which :func:`~mmer_lobes.errors.run_script`
    reports as one line, ``mini_corpora.py: error: <message>``, with exit status 2.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", required=True, help="folder that receives IEMOCAP_full_release and VoxCeleb1"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (default 0)"
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_NUM_WORKERS, help="synthesis processes"
    )
    args = parser.parse_args(argv)
    make_mini_corpora(args.out, seed=args.seed, num_workers=args.workers)


if __name__ == "__main__":
    sys.exit(run_script(main, "mini_corpora.py"))
