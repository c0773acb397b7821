"""hparams/loso_demo.yaml is hparams/loso.yaml plus the demo's overrides (`base: loso.yaml`):
recipes/experiment.py (also run as recipes/loso.py) applies them, then the command line's, and
refuses a key the base lacks. The jobs follow the corpus's protocol."""
import json
import os

import numpy as np
import pytest
from hyperpyyaml import load_hyperpyyaml

from mmer_lobes.corpora import CorpusError, corpus_description

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "hparams", "loso_demo.yaml")


@pytest.fixture(scope="module")
def loso(import_recipe):
    return import_recipe("experiment")


def test_the_old_script_name_is_the_same_experiment(import_recipe, loso):
    old = import_recipe("loso")
    assert old.build_jobs.__module__ == old.main.__module__ == old.ExperimentError.__module__ == "experiment"


def test_the_demo_is_the_base_with_its_overrides(loso):
    demo = loso.load_experiment(DEMO, "")
    with open(os.path.join(REPO, "hparams", "loso.yaml"), encoding="utf-8") as handle:
        base = load_hyperpyyaml(handle, {"data_folder": "data/mini/IEMOCAP_full_release"})
    changed = {key for key in base if base[key] != demo[key]}
    assert changed == {"output_folder", "manifest_folder", "speaker_data_folder", "jobs", "holdout_share",
                       "speaker_overrides", "speech_overrides", "text_overrides", "report_title", "report_notes"}
    assert demo["manifest_folder"] == "results/demo/manifests"  # the base's !ref follows the override
    assert demo["holdout_share"] == 0.25 and demo["paper_results"] == base["paper_results"]
    assert demo["speaker_overrides"]["embedding_size"] == demo["speech_overrides"]["embedding_size"] == 64  # the shared anchor
    # the speech folds take the features and the network from the speaker encoder's folder
    assert demo["speaker_overrides"]["n_mels"] == 64 and "n_mels" not in demo["speech_overrides"]
    assert "channels" not in demo["speech_overrides"]


def test_command_line_overrides_apply_after_the_demo_ones(loso):
    demo = loso.load_experiment(DEMO, "test_folds: [5]\nspeech_overrides: {number_of_epochs: 2}")
    assert demo["test_folds"] == [5]
    assert demo["speech_overrides"]["number_of_epochs"] == 2
    assert demo["speech_overrides"]["chunk_frames"] == [100]  # merged, not replaced


@pytest.mark.parametrize("overrides", ["test_fold: [5]", ""])
def test_a_key_the_base_lacks_is_refused(loso, tmp_path, overrides):
    demo = tmp_path / "demo.yaml"
    demo.write_text("base: " + os.path.join(REPO, "hparams", "loso.yaml") + "\ndata_folder: x\n"
                    + ("" if overrides else "test_fods: [5]\n"), encoding="utf-8")
    with pytest.raises(loso.ExperimentError, match="'test_fol?ds?' not found"):
        loso.load_experiment(str(demo), overrides)


@pytest.mark.parametrize("present, missing", [(["encoder.ckpt"], "encoder.yaml"), ([], "encoder.yaml or encoder.ckpt")])
def test_an_encoder_folder_must_hold_its_definition_and_weights(loso, tmp_path, present, missing):
    folder = tmp_path / "encoder"
    folder.mkdir()
    for name in present:
        (folder / name).write_bytes(b"")
    hparams = loso.load_experiment(DEMO, f"pretrained_encoder: {folder}\noutput_folder: {tmp_path / 'out'}")
    with pytest.raises(loso.ExperimentError, match=f"pretrained_encoder {folder} holds no {missing}: an encoder "
                                                   "folder is written by recipes/train_speaker.py or mmer-import-encoder"):
        loso.build_jobs(hparams, _manifests(tmp_path))


def _manifests(tmp_path, groups=("1", "2", "3", "4", "5"), protocol=None, modalities=("speech", "text"),
               text_carries_emotion=True):
    """Empty group manifests and the corpus.json that names them, where the jobs look for them;
    returns the corpus description."""
    folder = tmp_path / "out" / "manifests"
    folder.mkdir(parents=True)
    for group in groups:
        (folder / f"{group}.json").write_text("{}")
    corpus = corpus_description("test corpus", ["ang"], {g: f"{g}.json" for g in groups},
                                protocol or {"name": "leave_one_group_out"}, "session", modalities,
                                text_carries_emotion)
    (folder / "corpus.json").write_text(json.dumps(corpus))
    return corpus


def test_jobs_read_the_encoder_folder_they_are_given(loso, tmp_path):
    corpus = _manifests(tmp_path)
    folder = tmp_path / "encoder"
    folder.mkdir()
    for name in ("encoder.yaml", "encoder.ckpt"):
        (folder / name).write_bytes(b"")
    hparams = loso.load_experiment(DEMO, f"pretrained_encoder: {folder}\noutput_folder: {tmp_path / 'out'}")
    speaker_jobs, fold_jobs = loso.build_jobs(hparams, corpus)[:2]
    speech = [job for job in fold_jobs if job.name.startswith("speech_")]
    assert speech and speaker_jobs == []
    for job in speech:
        assert job.overrides["pretrained_encoder"] == str(folder)
        assert {str(folder / "encoder.yaml"), str(folder / "encoder.ckpt")} <= set(job.definition["input_files"])


def test_the_speaker_job_depends_on_its_encoder_template(loso, tmp_path):
    corpus = _manifests(tmp_path)
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}")
    speaker = loso.build_jobs(hparams, corpus)[0][0]
    assert speaker.name == "speaker pretraining"
    assert list(speaker.definition["input_files"]) == [os.path.join(REPO, "hparams", "encoders", "paper_resnet34.yaml")]
    assert [os.path.relpath(f, speaker.output_folder) for f in speaker.done_files] == [
        "verification.json", "encoder/encoder.yaml", "encoder/encoder.ckpt"]


def test_the_jobs_follow_the_corpus_protocol_and_modalities(loso, tmp_path):
    corpus = _manifests(tmp_path, groups=("a", "b", "c"), modalities=("speech", "text"), text_carries_emotion=False)
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nmodalities: [speech]\n"
                                         "speech_modes: [scratch]\nprotocol: speaker_folds\nn_folds: 4")
    speaker_jobs, fold_jobs, fusion_jobs, folders = loso.build_jobs(hparams, corpus)
    assert speaker_jobs == [] and fusion_jobs == []  # scratch transfers nothing; no text, no fusion
    assert [job.name for job in fold_jobs] == [f"{system} fold {k}" for k in "1234"
                                               for system in ("baseline_egemaps", "speech_scratch")]
    assert folders == {system: {k: str(tmp_path / "out" / system / f"fold{k}") for k in "1234"}
                       for system in ("baseline_egemaps", "speech_scratch")}
    assert {key: fold_jobs[0].overrides[key] for key in ("test_fold", "protocol", "n_folds", "skip_prep")} == \
        {"test_fold": "1", "protocol": "speaker_folds", "n_folds": 4, "skip_prep": True}
    # the corpus.json and every group manifest define each job
    assert {os.path.basename(f) for f in fold_jobs[0].definition["input_files"]} == {"corpus.json", "a.json", "b.json",
                                                                                     "c.json"}
    with pytest.raises(CorpusError, match="test corpus: its text is the same sentences read in every emotion"):
        loso.build_jobs(loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}"), corpus)
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nmodalities: [speech]\n"
                                         "speech_modes: [scratch]\ntest_folds: [a, z]")
    with pytest.raises(loso.ExperimentError, match=r"test_folds \['z'\] are not folds of test corpus, leave one "
                                                   r"session out \(3 folds\): \['a', 'b', 'c'\]"):
        loso.build_jobs(hparams, corpus)


def test_an_official_partition_runs_one_fold_and_text_alone_has_no_fusion(loso, tmp_path):
    corpus = _manifests(tmp_path, groups=("train", "dev", "test"), modalities=("text",),
                        protocol={"name": "official", "train": ["train"], "holdout": ["dev"], "test": ["test"]})
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nmodalities: [text]")
    speaker_jobs, fold_jobs, fusion_jobs, folders = loso.build_jobs(hparams, corpus)
    assert speaker_jobs == [] and fusion_jobs == []  # no speech: no encoder, no fusion
    assert [job.name for job in fold_jobs] == ["baseline_tfidf fold test", "text fold test"]
    assert list(folders) == ["baseline_tfidf", "text"]
    with pytest.raises(CorpusError, match=r"test corpus was prepared without speech \(its modalities: \['text'\]\), "
                                          "so no speech branch can run on it"):
        loso.build_jobs(loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}"), corpus)


@pytest.mark.parametrize("name, shown", [("IEMOCAP", True), ("RAVDESS speech", False)])
def test_the_paper_column_appears_for_iemocap_only(loso, tmp_path, name, shown):
    corpus = {**_manifests(tmp_path), "corpus": name}
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}")  # paper_results set
    metrics = {"text": {f: {"UA": 50.0, "WA": 60.0, "confusion": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1],
                                                                  [0, 0, 1, 1]]} for f in "12345"}}
    report = loso.write_report(hparams, corpus, metrics, {})
    assert ("| system | UA (%) | WA (%) | paper UA (IEMOCAP) | paper WA (IEMOCAP) |" in report) is shown
    # every figure comes from the confusion counts: recalls 100, 100, 50, 50; 4 of 6 right
    assert ("| text | 75.00 ± 0.00 | 66.67 ± 0.00 | 70.33 | 70.24 |" in report) is shown
    assert f"Corpus and protocol: {name}, leave one session out (5 folds)." in report
    assert "| system | session 1 | session 2 | session 3 | session 4 | session 5 |" in report


def test_both_modalities_get_the_same_fold_and_group_names_survive_the_command_line(loso, tmp_path):
    """EmoDB's speakers are groups "03" ... "16": a job's command must give the recipe "08", not 8."""
    import speechbrain as sb
    from ruamel.yaml import YAML

    corpus = _manifests(tmp_path, groups=("03", "08"))
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nspeech_modes: [scratch]\n"
                                         "fusion_speech_mode: scratch\nlabel_map: {ang: ang}")
    fold_jobs = loso.build_jobs(hparams, corpus)[1]
    shared = (*loso.FOLD_KEYS, *loso.JOB_KEYS)
    for fold in ("03", "08"):
        jobs = [job for job in fold_jobs if job.name.endswith(f"fold {fold}")]
        assert [job.name.split()[0] for job in jobs] == ["baseline_egemaps", "baseline_tfidf", "speech_scratch",
                                                         "text"]
        for job in jobs[1:]:  # every job of the fold cuts it the same way
            assert {key: jobs[0].overrides[key] for key in shared} == {key: job.overrides[key] for key in shared}
        for job in jobs:  # read back as the recipe reads its command line
            _, _, overrides = sb.parse_arguments(job.command[2:])
            read = YAML(typ="safe", pure=True).load(overrides)
            assert read["test_fold"] == fold and read["label_map"] == {"ang": "ang"}


def test_a_modality_cannot_cut_its_folds_differently(loso, tmp_path):
    corpus = _manifests(tmp_path)
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\n"
                                         "text_overrides: {holdout: stratified, number_of_epochs: 1}")
    with pytest.raises(loso.ExperimentError, match="text_overrides sets holdout, which every fold job shares: "
                                                   "set it at the top level of the experiment"):
        loso.build_jobs(hparams, corpus)
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nspeech_modes: []")
    with pytest.raises(loso.ExperimentError, match="speech_modes is empty"):
        loso.build_jobs(hparams, corpus)


def test_the_baselines_run_first_on_the_modalities_that_run(loso, tmp_path):
    corpus = _manifests(tmp_path, groups=("a", "b"))
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nmodalities: [text]\n"
                                         "baseline_overrides: {selection_metric: wF1}")
    fold_jobs, folders = (lambda jobs: (jobs[1], jobs[3]))(loso.build_jobs(hparams, corpus))
    assert list(folders) == ["baseline_tfidf", "text"]  # the report's order; no speech, no eGeMAPS
    baseline = fold_jobs[0]
    assert baseline.command[1].endswith("recipes/train_baseline.py") and baseline.overrides["selection_metric"] == "wF1"
    assert os.path.abspath(baseline.command[2]) == os.path.join(REPO, "hparams", "baseline_tfidf.yaml")
    assert {key: baseline.overrides[key] for key in loso.FOLD_KEYS} == \
        {key: fold_jobs[1].overrides[key] for key in loso.FOLD_KEYS}  # the text job's fold
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nbaselines: []")
    assert not [name for name in loso.build_jobs(hparams, corpus)[3] if name.startswith("baseline")]


@pytest.mark.parametrize("contents, message", [
    (None, "baselines: no such YAML file: .*missing.yaml"),
    ("modality: video\n", "baselines: .*odd.yaml names no modality \\(speech or text\\) of a baseline"),
])
def test_a_baseline_file_must_exist_and_name_its_modality(loso, tmp_path, contents, message):
    corpus = _manifests(tmp_path)
    path = tmp_path / ("missing.yaml" if contents is None else "odd.yaml")
    if contents is not None:
        path.write_text(contents, encoding="utf-8")
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nbaselines: [{path}]")
    with pytest.raises(loso.ExperimentError, match=message):
        loso.build_jobs(hparams, corpus)
    hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\nbaseline_overrides: {{test_fold: 1}}")
    with pytest.raises(loso.ExperimentError, match="baseline_overrides sets test_fold, which every fold job shares"):
        loso.build_jobs(hparams, corpus)
    text = tmp_path / "text.yaml"
    text.write_text("modality: text\n", encoding="utf-8")
    for change, message in ((f"baselines: [{text}]", "would share its folders with the text system: rename it"),
                            ("report_metrics: [F1]", r"report_metrics must be a list of some of \['UA', 'WA', 'wF1'\]"),
                            ("report_metrics: wF1", "report_metrics must be a list")):
        hparams = loso.load_experiment(DEMO, f"output_folder: {tmp_path / 'out'}\n{change}")
        with pytest.raises(loso.ExperimentError, match=message):
            loso.build_jobs(hparams, corpus)


def test_the_report_leads_with_the_metrics_it_is_asked_for(loso, tmp_path):
    corpus = _manifests(tmp_path, groups=("train", "dev", "test"), modalities=("text",),
                        protocol={"name": "official", "train": ["train"], "holdout": ["dev"], "test": ["test"]})
    hparams = loso.load_experiment(os.path.join(REPO, "hparams", "meld.yaml"),
                                   f"data_folder: x\noutput_folder: {tmp_path / 'out'}")
    assert hparams["report_metrics"] == ["wF1", "UA", "WA"] and len(hparams["emotions"]) == 7
    confusion = np.diag([3, 1, 1, 1, 1, 1, 1])
    confusion[0, 4] = 1  # one anger utterance taken for neutral
    metrics = {"baseline_tfidf": {"test": {"confusion": confusion.tolist()}},
               "text": {"test": {"confusion": np.diag([4, 1, 1, 1, 1, 1, 1]).tolist()}}}
    report = loso.write_report(hparams, corpus, metrics, {})
    expected_f1 = 100 * (4 * 6 / 7 + 2 / 3 + 5) / 10  # F1 anger 2*3/(6+1) (4 true), neutral 2/(2+1), others 1
    assert "| system | weighted F1 (%) | UA (%) | WA (%) |" in report
    assert f"| baseline_tfidf | {expected_f1:.2f} ± 0.00 | {100 * (0.75 + 6) / 7:.2f} ± 0.00 | 90.00 ± 0.00 |" in report
    assert report.index("| baseline_tfidf |") < report.index("| text |")
    assert "| text | 100.0 / 100.0 / 100.0 |" in report
    assert os.path.isfile(tmp_path / "out" / "confusion_baseline_tfidf.png")


def test_a_base_file_may_have_a_base_of_its_own(loso, tmp_path):
    ravdess = loso.load_experiment(os.path.join(REPO, "hparams", "ravdess.yaml"), "data_folder: x")
    cpu = loso.load_experiment(os.path.join(REPO, "hparams", "ravdess_cpu.yaml"), "data_folder: x\njobs: 1")
    changed = {key for key in ravdess if ravdess[key] != cpu[key]}
    assert changed == {"output_folder", "manifest_folder", "speech_modes", "speech_overrides"}  # jobs: 1 again
    assert cpu["label_map"] == ravdess["label_map"] and cpu["modalities"] == ["speech"]  # from ravdess.yaml
    assert cpu["jobs"] == 1 and cpu["manifest_folder"] == "results/ravdess_cpu/manifests"
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("base: b.yaml\njobs: 2\n", encoding="utf-8")
    second.write_text("base: a.yaml\n", encoding="utf-8")
    with pytest.raises(loso.ExperimentError, match="its chain of base files comes back to it"):
        loso.load_experiment(str(first), "")
