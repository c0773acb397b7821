"""Writers of the text files in the real corpora's formats: IEMOCAP's EmoEvaluation (with its
side folders) and transcriptions, and VoxCeleb's trial list.
"""

import os

import numpy as np

from .settings import (
    CATEGORY_NAMES,
    IEMOCAP_DIRNAME,
    SAMPLE_RATE,
    VOXCELEB_DIRNAME,
    VOXCELEB_TRIAL_LIST,
)


def _dialog_timeline(turns, idless, durations):
    """Start and end times of every turn and id-less turn, cumulative over the dialog."""
    idless_by_position = {position: entry for position, *entry in idless}
    clock, times, idless_times = 0.0, [], []
    for k, turn in enumerate(turns):
        clock += turn.gap_before_s
        if k in idless_by_position:  # an id-less turn fills part of this pause
            speaker, text, duration, with_times = idless_by_position[k]
            idless_times.append((k, speaker, text, clock, clock + duration, with_times))
            clock += duration + turn.gap_before_s
        start = round(clock, 4)
        end = round(start + durations[turn.audio.path] / SAMPLE_RATE, 4)
        times.append((start, end))
        clock = end
    return times, idless_times


def format_emo_evaluation(turns, times):
    """The text of one ``EmoEvaluation/<dialog>.txt`` file.

    Example
    -------
    >>> from data_prep.minicorpus.sampling import IemocapTurn
    >>> turn = IemocapTurn("Ses01F_impro01_F000", 1, "Ses01F_impro01", "Ses01F", "neu", "neu",
    ...                    "own", 1.0, [("C-E2", "Neutral")], [("A-E3", (3, 2, 2))])
    >>> text = format_emo_evaluation([turn], [(6.2901, 8.2357)])
    >>> print(text, end="")  # doctest: +NORMALIZE_WHITESPACE
    % [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]
    <BLANKLINE>
    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[3.0000, 2.0000, 2.0000]
    C-E2:	Neutral;	()
    A-E3:	val 3; act 2; dom  2;	()
    <BLANKLINE>
    """
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for turn, (start, end) in zip(turns, times):
        vad = np.mean([values for _, values in turn.attributes], axis=0)
        lines.append(
            f"[{start:.4f} - {end:.4f}]\t{turn.utt_id}\t{turn.label}\t"
            f"[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]"
        )
        lines.extend(f"{evaluator}:\t{category};\t()" for evaluator, category in turn.categorical)
        lines.extend(
            f"{evaluator}:\tval {v}; act {a}; dom  {d};\t()"
            for evaluator, (v, a, d) in turn.attributes
        )
        lines.append("")
    return "\n".join(lines) + "\n"


def format_transcription(turns, times, idless_times):
    """The text of one ``transcriptions/<dialog>.txt`` file, id-less lines included.

    Example
    -------
    >>> from data_prep.minicorpus.sampling import IemocapTurn, UtterancePlan
    >>> turn = IemocapTurn("Ses01F_impro01_F000", 1, "Ses01F_impro01", "Ses01F", "neu", "neu",
    ...                    "own", 1.0, audio=UtterancePlan("x.wav", "Excuse me.", "en-us+f1",
    ...                    175, 50, 50, -27.0, 0.0, 0.0, -60.0, 0.1, 0.1, 0))
    >>> idless = [(0, "M", "Yeah.", 2.0, 3.0, False)]
    >>> print(format_transcription([turn], [(6.2901, 8.2357)], idless), end="")
    M: Yeah.
    Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
    """
    idless_before = {}
    for position, speaker, text, start, end, with_times in idless_times:
        line = (
            f"{speaker}XX [{start:08.4f}-{end:08.4f}]: {text}"
            if with_times
            else f"{speaker}: {text}"
        )
        idless_before.setdefault(position, []).append(line)
    lines = []
    for k, (turn, (start, end)) in enumerate(zip(turns, times)):
        lines.extend(idless_before.get(k, []))
        lines.append(f"{turn.utt_id} [{start:08.4f}-{end:08.4f}]: {turn.audio.text}")
    return "\n".join(lines) + "\n"


def _write_text(path, text, encoding="ascii"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="\n") as handle:
        handle.write(text)


def write_iemocap_text_files(root, plan, durations):
    """Writes the EmoEvaluation (with its side folders) and transcription files of every dialog."""
    by_dialog = {}
    for turn in plan["turns"]:
        by_dialog.setdefault(turn.dialog, []).append(turn)
    for dialog, turns in by_dialog.items():
        session_dir = os.path.join(
            root, IEMOCAP_DIRNAME, f"Session{plan['dialogs'][dialog]}", "dialog"
        )
        times, idless_times = _dialog_timeline(turns, plan["idless_turns"][dialog], durations)
        evaluation_dir = os.path.join(session_dir, "EmoEvaluation")
        _write_text(
            os.path.join(evaluation_dir, f"{dialog}.txt"), format_emo_evaluation(turns, times)
        )
        # IEMOCAP's transcriptions are not all UTF-8: these are latin-1 ("café" is one byte).
        _write_text(
            os.path.join(session_dir, "transcriptions", f"{dialog}.txt"),
            format_transcription(turns, times, idless_times),
            encoding="latin-1",
        )
        # The per-evaluator folders that sit beside the .txt files in the real corpus.
        categorical = "".join(f"{turn.utt_id} :{turn.categorical[0][1]}; ()\n" for turn in turns)
        _write_text(
            os.path.join(evaluation_dir, "Categorical", f"{dialog}_e2_cat.txt"), categorical
        )
        attributes = "".join(
            f"{turn.utt_id} :act {a}; val {v}; dom  {d}; ()\n"
            for turn in turns
            for _, (v, a, d) in turn.attributes[:1]
        )
        _write_text(os.path.join(evaluation_dir, "Attribute", f"{dialog}_e3_atr.txt"), attributes)
        self_evaluation = "".join(
            f"{turn.utt_id} :{CATEGORY_NAMES.get(turn.label, 'Other')}; ()\n" for turn in turns
        )
        _write_text(
            os.path.join(evaluation_dir, "Self-evaluation", f"{dialog}_self.txt"), self_evaluation
        )


def write_voxceleb_trials(root, plan):
    """Writes ``veri_test2.txt``: ``label enrol_path test_path`` per line."""
    lines = "".join(f"{label} {enrol} {test}\n" for label, enrol, test in plan["trials"])
    _write_text(os.path.join(root, VOXCELEB_DIRNAME, VOXCELEB_TRIAL_LIST), lines)
