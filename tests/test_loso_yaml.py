"""hparams/loso_demo.yaml is hparams/loso.yaml plus the demo's overrides (`base: loso.yaml`):
recipes/loso.py applies them, then the command line's, and refuses a key the base lacks."""
import os

import pytest
from hyperpyyaml import load_hyperpyyaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "hparams", "loso_demo.yaml")


@pytest.fixture(scope="module")
def loso(import_recipe):
    return import_recipe("loso")


def test_the_demo_is_the_base_with_its_overrides(loso):
    demo = loso.load_experiment(DEMO, "")
    with open(os.path.join(REPO, "hparams", "loso.yaml"), encoding="utf-8") as handle:
        base = load_hyperpyyaml(handle, {"data_folder": "data/mini/IEMOCAP_full_release"})
    changed = {key for key in base if base[key] != demo[key]}
    assert changed == {"output_folder", "manifest_folder", "speaker_data_folder", "jobs", "holdout_share",
                       "speaker_overrides", "speech_overrides", "text_overrides", "report_title", "report_notes"}
    assert demo["manifest_folder"] == "results/demo/manifests"  # the base's !ref follows the override
    assert demo["holdout_share"] == 0.25 and demo["paper_results"] == base["paper_results"]
    assert demo["speaker_overrides"]["n_mels"] == demo["speech_overrides"]["n_mels"] == 64  # the shared anchor


def test_command_line_overrides_apply_after_the_demo_ones(loso):
    demo = loso.load_experiment(DEMO, "test_sessions: [5]\nspeech_overrides: {number_of_epochs: 2}")
    assert demo["test_sessions"] == [5]
    assert demo["speech_overrides"]["number_of_epochs"] == 2
    assert demo["speech_overrides"]["channels"] == [4, 8, 16, 32]  # merged, not replaced


@pytest.mark.parametrize("overrides", ["test_session: [5]", ""])
def test_a_key_the_base_lacks_is_refused(loso, tmp_path, overrides):
    demo = tmp_path / "demo.yaml"
    demo.write_text("base: " + os.path.join(REPO, "hparams", "loso.yaml") + "\ndata_folder: x\n"
                    + ("" if overrides else "test_sesions: [5]\n"), encoding="utf-8")
    with pytest.raises(loso.ExperimentError, match="'test_sess?ions?' not found"):
        loso.load_experiment(str(demo), overrides)
