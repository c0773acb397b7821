"""Both prepare scripts on the built-in corpora, as a new user runs them."""
import json
import os
from collections import Counter

import soundfile

from data_prep.voxceleb_prepare import prepare_voxceleb


def test_iemocap_manifests_of_the_mini_corpus(iemocap_manifests):
    data_folder, manifest_folder = iemocap_manifests
    total = Counter()
    for session in range(1, 6):
        manifest = json.load(open(os.path.join(manifest_folder, f"Session{session}.json")))
        # 2 speakers x 48 usable utterances; xxx/fru/sur turns are gone, exc became hap.
        assert len(manifest) == 96
        classes = Counter(entry["emo"] for entry in manifest.values())
        assert classes == {"ang": 22, "hap": 26, "neu": 26, "sad": 22}
        assert {entry["speaker"] for entry in manifest.values()} == {f"Ses0{session}F", f"Ses0{session}M"}
        for utt_id, entry in manifest.items():
            assert entry["session"] == session
            assert entry["speaker"] == utt_id[:5] + utt_id.split("_")[-1][0]
            assert entry["emo_raw"] in {"ang", "hap", "exc", "neu", "sad"}
            assert entry["transcript"].strip()
            assert entry["wav"].startswith("{data_root}/Session")
            path = entry["wav"].replace("{data_root}", data_folder)
            info = soundfile.info(path)
            assert (info.samplerate, info.channels) == (16000, 1)
            assert abs(entry["duration"] - info.frames / info.samplerate) < 1e-3
        total.update(classes)
    assert sum(total.values()) == 480


def test_voxceleb_manifests_of_the_mini_corpus(mini_corpora, tmp_path):
    data_folder = os.path.join(mini_corpora, "VoxCeleb1")
    paths = prepare_voxceleb(data_folder, str(tmp_path))
    train = json.load(open(paths["train"]))
    valid = json.load(open(paths["valid"]))
    training_speakers = {e["spk_id"] for e in train.values()} | {e["spk_id"] for e in valid.values()}
    assert len(training_speakers) == 40 and len(train) + len(valid) == 320
    trial_speakers = set()
    with open(paths["trials"]) as handle:
        for line in handle:
            label, enrol, test = line.split()
            assert label in {"0", "1"}
            trial_speakers.update({enrol.split("/")[0], test.split("/")[0]})
            for rel in (enrol, test):
                assert os.path.isfile(os.path.join(data_folder, "wav", rel))
    assert len(trial_speakers) == 8
    assert not trial_speakers & training_speakers
