"""mmer-import-encoder (recipes/import_encoder.py): published speaker models as encoder folders,
checked against their own code. Nothing is downloaded: the models get random weights and are
saved in their published folder layouts here.

- wespeaker: ``avg_model.pt`` + ``config.yaml``; the reference is wespeaker's own model code
  (tests/wespeaker_reference.py) and feature code.
- SpeechBrain: the hub layout of ``spkrec-ecapa-voxceleb``; the reference is SpeechBrain's
  own ``EncoderClassifier`` loading the same folder.
"""
import os
import subprocess
import sys

import pytest
import soundfile
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

from mmer_lobes.audio import load_audio
from mmer_lobes.encoder_folders import EncoderFolderError, load_encoder_definition
from mmer_lobes.kaldi_features import KaldiFbank, features_and_lengths, kaldi_frame_count
from mmer_lobes.speechbrain_speakers import import_speechbrain_folder
from mmer_lobes.wespeaker import WespeakerImportError, import_wespeaker_folder
from wespeaker_reference import FEAT_DIM, randomise, wespeaker_features, wespeaker_pooled

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(os.path.dirname(sys.executable), "mmer-import-encoder")
FBANK_ARGS = {"num_mel_bins": FEAT_DIM, "frame_shift": 10, "frame_length": 25, "dither": 1.0}


def wespeaker_config(model, **model_args):
    """A wespeaker ``config.yaml`` as its recipes write it (the parts the import reads)."""
    return {"model": model, "model_args": {"feat_dim": FEAT_DIM, "embed_dim": 256, "pooling_func": "TSTP",
                                           "two_emb_layer": False, **model_args},
            "dataset_args": {"resample_rate": 16000, "fbank_args": FBANK_ARGS}}


# name: (wespeaker constructor, config.yaml)
WESPEAKER_MODELS = {
    "ResNet34": (lambda r: r.ResNet34(feat_dim=FEAT_DIM, embed_dim=256), wespeaker_config("ResNet34")),
    # ResNet50's Bottlenecks, narrower (m_channels 8) to keep the test fast
    "ResNet50": (lambda r: r.ResNet(r.Bottleneck, [3, 4, 6, 3], m_channels=8, feat_dim=FEAT_DIM, embed_dim=64),
                 wespeaker_config("ResNet50", embed_dim=64, m_channels=8)),
    # a small ResNet34 for the folds
    "small": (lambda r: r.ResNet(r.BasicBlock, [3, 4, 6, 3], m_channels=4, feat_dim=FEAT_DIM, embed_dim=32),
              wespeaker_config("ResNet34", embed_dim=32, m_channels=4)),
}


def write_wespeaker_folder(wespeaker_resnet, name, folder):
    """A randomised wespeaker model saved as a published folder; returns the model (eval)."""
    build, config = WESPEAKER_MODELS[name]
    torch.manual_seed(0)
    model = randomise(build(wespeaker_resnet))
    os.makedirs(folder, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(folder, "avg_model.pt"))
    with open(os.path.join(folder, "config.yaml"), "w") as handle:
        yaml.safe_dump(config, handle)
    return model


def run_import(*args):
    """The console script, as a user types it."""
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=600)


def load_folder(folder):
    """An encoder folder loaded as the recipes load it: definition, then strict weights."""
    definition = load_encoder_definition(folder)
    state = torch.load(os.path.join(folder, "encoder.ckpt"), weights_only=True)
    definition["encoder"].load_state_dict(state, strict=True)
    definition["encoder"].eval()
    return definition


def pooled(definition, wavs, wav_lens):
    """Pooled statistics of waveforms through a definition's own front end."""
    with torch.no_grad():
        feats, lens = features_and_lengths(definition["compute_features"], wavs, wav_lens)
        return definition["encoder"](definition["mean_var_norm"](feats, lens), lens)


def corpus_wav(mini_corpora, index=0):
    root = os.path.join(mini_corpora, "IEMOCAP_full_release")
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".wav"))
    return paths[index]


# ------------------------------------------------------------------------------ wespeaker ----


@pytest.mark.parametrize("name", ["ResNet34", "ResNet50"])
def test_imported_wespeaker_encoder_equals_wespeaker(wespeaker_resnet, name, tmp_path, mini_corpora):
    """Measured max abs differences (CPU, float32, statistics up to about 3.5): on the same
    features, ResNet34 4.5e-08 and ResNet50 (m_channels 8) 1.5e-08; from a wav through each
    side's own front end, 1.5e-08 and 7.5e-09."""
    model = write_wespeaker_folder(wespeaker_resnet, name, tmp_path / "published")
    result = run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pooled statistics of size" in result.stdout
    assert sorted(os.listdir(tmp_path / "enc")) == ["encoder.ckpt", "encoder.yaml"]
    definition = load_folder(str(tmp_path / "enc"))
    assert isinstance(definition["compute_features"], KaldiFbank)
    assert definition["sample_rate"] == 16000 and definition["n_mels"] == FEAT_DIM

    feats = torch.randn(2, 120, FEAT_DIM, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        same_features = (definition["encoder"](feats, torch.ones(2)) - wespeaker_pooled(model, feats)).abs().max()
    # a real wav: wespeaker's features of the 16-bit samples against the folder's front end
    path = corpus_wav(mini_corpora)
    pcm = torch.from_numpy(soundfile.read(path, dtype="int16")[0]).to(torch.float)[None]
    with torch.no_grad():
        theirs = wespeaker_pooled(model, wespeaker_features(pcm)[None])
    ours = pooled(definition, load_audio(path, 16000)[None], torch.ones(1))
    from_wav = (ours - theirs).abs().max()
    print(f"{name}: max abs difference {same_features:.2e} on features, {from_wav:.2e} from a wav "
          f"(max abs statistic {theirs.abs().max():.1f})")
    assert ours.shape == theirs.shape == (1, model.pool_out_dim)
    assert same_features <= 1e-4 and from_wav <= 1e-4


def test_wespeaker_front_end_gives_a_padded_clip_its_own_features(wespeaker_resnet, tmp_path, mini_corpora):
    """In a padded batch, the folder's front end and normalisation give the shorter clip
    exactly its own frames (wespeaker's features of the clip alone), and zeros after them."""
    write_wespeaker_folder(wespeaker_resnet, "small", tmp_path / "published")
    assert run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc")).returncode == 0
    definition = load_folder(str(tmp_path / "enc"))
    long, short = load_audio(corpus_wav(mini_corpora, 0), 16000), load_audio(corpus_wav(mini_corpora, 1), 16000)
    long, short = (long, short) if len(long) >= len(short) else (short, long)
    assert len(short) < len(long)
    wavs = torch.zeros(2, len(long))
    wavs[0], wavs[1, : len(short)] = long, short
    feats, lens = features_and_lengths(definition["compute_features"], wavs, torch.tensor([1.0, len(short) / len(long)]))
    normalised = definition["mean_var_norm"](feats, lens)
    frames = kaldi_frame_count(len(short))
    assert round(float(lens[1]) * feats.shape[1]) == frames < feats.shape[1]
    pcm = torch.round(short * 32768)[None]  # the 16-bit samples the float clip came from
    expected = wespeaker_features(pcm)
    assert expected.shape == (frames, FEAT_DIM)
    assert (normalised[1, :frames] - expected).abs().max() <= 1e-3
    assert torch.equal(feats[1, frames:], torch.zeros_like(feats[1, frames:]))


def test_wespeaker_folder_problems_are_named(wespeaker_resnet, tmp_path):
    folder = tmp_path / "published"
    model = write_wespeaker_folder(wespeaker_resnet, "ResNet34", folder)
    state = model.state_dict()

    # an unknown key, a missing key, a key of another shape: all named, nothing written
    for change, named in ((lambda s: s.update({"layer5.0.conv1.weight": torch.zeros(1)}), "layer5.0.conv1.weight"),
                          (lambda s: s.pop("layer3.5.bn2.running_var"), "layer3.5.bn2.running_var"),
                          (lambda s: s.update({"conv1.weight": torch.zeros(32, 1, 5, 5)}), "conv1.weight (32, 1, 5, 5)")):
        broken = dict(state)
        change(broken)
        torch.save(broken, folder / "avg_model.pt")
        with pytest.raises(WespeakerImportError, match="does not fit the encoder") as error:
            import_wespeaker_folder(str(folder))
        assert named in str(error.value)

    os.remove(folder / "avg_model.pt")
    result = run_import("--wespeaker", str(folder), "--output", str(tmp_path / "enc"))
    assert result.returncode == 2 and not os.path.exists(tmp_path / "enc")
    assert result.stderr.strip() == f"mmer-import-encoder: error: {folder} holds no avg_model.pt: not a wespeaker " \
                                    "model folder (config.yaml + avg_model.pt)"


def test_wespeaker_config_problems_are_named(tmp_path):
    folder = tmp_path / "published"
    folder.mkdir()
    torch.save({}, folder / "avg_model.pt")
    for config, message in ((wespeaker_config("ECAPA_TDNN_GLOB_c512"), "model 'ECAPA_TDNN_GLOB_c512' is not a wespeaker ResNet"),
                            (wespeaker_config("ResNet34", pooling_func="ASTP"), "pooling_func 'ASTP' is not supported"),
                            ({**wespeaker_config("ResNet34"), "dataset_args": {"fbank_args": {"num_mel_bins": 64}}},
                             "num_mel_bins is 64 but model_args.feat_dim is 80"),
                            ({**wespeaker_config("ResNet34"), "dataset_args": {"frontend": "s3prl"}},
                             "dataset_args.frontend is 's3prl': only the fbank front end converts"),
                            ({**wespeaker_config("ResNet34"), "dataset_args": {"cmvn": False}},
                             "trained without mean normalisation")):
        with open(folder / "config.yaml", "w") as handle:
            yaml.safe_dump(config, handle)
        with pytest.raises(WespeakerImportError, match=message):
            import_wespeaker_folder(str(folder))


def test_an_existing_output_is_kept_unless_overwrite(wespeaker_resnet, tmp_path):
    write_wespeaker_folder(wespeaker_resnet, "small", tmp_path / "published")
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "mine.txt").write_text("keep")
    result = run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc"))
    assert result.returncode == 2 and "exists and is not empty" in result.stderr
    assert os.listdir(tmp_path / "enc") == ["mine.txt"]
    result = run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc"), "--overwrite")
    assert result.returncode == 2 and "holds mine.txt, not only an encoder folder's files" in result.stderr
    assert os.listdir(tmp_path / "enc") == ["mine.txt"]
    # an encoder folder is replaced with --overwrite
    (tmp_path / "enc" / "mine.txt").unlink()
    assert run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc")).returncode == 0
    first = (tmp_path / "enc" / "encoder.yaml").read_text()
    assert run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc")).returncode == 2
    result = run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc"), "--overwrite")
    assert result.returncode == 0 and sorted(os.listdir(tmp_path / "enc")) == ["encoder.ckpt", "encoder.yaml"]
    assert (tmp_path / "enc" / "encoder.yaml").read_text() == first
    assert sorted(os.listdir(tmp_path)) == ["enc", "published"]  # no staging or old folder left


def test_overwrite_replaces_only_an_encoder_folder(wespeaker_resnet, tmp_path):
    published = tmp_path / "published"
    write_wespeaker_folder(wespeaker_resnet, "small", published)
    before = sorted(os.listdir(published))
    # the model's own folder, or any folder with other files, is never replaced
    for output in (published, tmp_path):
        result = run_import("--wespeaker", str(published), "--output", str(output), "--overwrite")
        assert result.returncode == 2 and "not only an encoder folder's files: refusing to replace it" in result.stderr
    assert sorted(os.listdir(published)) == before
    (tmp_path / "a_file").write_text("x")
    result = run_import("--wespeaker", str(published), "--output", str(tmp_path / "a_file"))
    assert result.returncode == 2 and "exists and is not a folder" in result.stderr
    assert (tmp_path / "a_file").read_text() == "x"


def test_a_folder_that_does_not_run_replaces_nothing(tmp_path):
    """The load-back check runs in the staging folder: a model that fails it leaves the
    previous encoder folder as it was."""
    from mmer_lobes.cli.import_encoder import import_encoder
    from mmer_lobes.errors import ProjectError

    write_speechbrain_folder(tmp_path / "published", "small")
    assert run_import("--speechbrain", str(tmp_path / "published"), "--output", str(tmp_path / "enc")).returncode == 0
    kept = {name: (tmp_path / "enc" / name).read_bytes() for name in os.listdir(tmp_path / "enc")}
    norm = torch.load(tmp_path / "published" / "mean_var_norm_emb.ckpt", weights_only=True)
    norm["glob_mean"] = torch.full_like(norm["glob_mean"], float("nan"))  # imports, but scores NaN
    torch.save(norm, tmp_path / "published" / "mean_var_norm_emb.ckpt")
    with pytest.raises(ProjectError, match="non-finite statistics"):
        import_encoder(["--speechbrain", str(tmp_path / "published"), "--output", str(tmp_path / "enc"), "--overwrite"])
    assert {name: (tmp_path / "enc" / name).read_bytes() for name in os.listdir(tmp_path / "enc")} == kept
    assert sorted(os.listdir(tmp_path)) == ["enc", "published"]  # no staging folder left


def test_the_command_needs_exactly_one_model(tmp_path):
    for args in ([], ["--wespeaker", "a", "--speechbrain", "b"]):
        result = run_import(*args, "--output", str(tmp_path / "enc"))
        assert result.returncode == 2 and "usage: mmer-import-encoder" in result.stderr


def test_console_script_and_recipe_are_the_same_command(tmp_path):
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("mmer-import-encoder") == "mmer_lobes.cli.import_encoder:main"
    result = subprocess.run([sys.executable, "recipes/import_encoder.py", "--speechbrain", str(tmp_path),
                             "--output", str(tmp_path / "enc")], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"import_encoder.py: error: {tmp_path} holds no hyperparams.yaml: not a "
                                     "SpeechBrain speaker model in the hub layout")


# ---------------------------------------------------------------------------- SpeechBrain ----

HUB_YAML = """\
# spkrec-ecapa-voxceleb's hyperparams.yaml, with the network's sizes as parameters
n_mels: {n_mels}
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 7

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

{embedding_model}

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {embedding}
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: {embedding_std_norm}

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""
ECAPA = """embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: {channels}
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: {attention}
    lin_neurons: {embedding}"""
# The networks of spkrec-resnet-voxceleb and spkrec-xvect-voxceleb, small
RESNET = """embedding_model: !new:speechbrain.lobes.models.ResNet.ResNet
    input_size: !ref <n_mels>
    channels: [8, 8, 16, 16]
    block_sizes: [1, 1, 1, 1]
    lin_neurons: {embedding}"""
XVECTOR = """embedding_model: !new:speechbrain.lobes.models.Xvector.Xvector
    in_channels: !ref <n_mels>
    tdnn_channels: [16, 16, 16, 16, 48]
    lin_neurons: {embedding}"""
# The published ECAPA, a small one for the folds, and the other SpeechBrain speaker networks.
SPEECHBRAIN_MODELS = {
    "published": (ECAPA, {"n_mels": 80, "channels": [1024, 1024, 1024, 1024, 3072], "attention": 128, "embedding": 192,
                          "embedding_std_norm": False}),
    "small": (ECAPA, {"n_mels": 40, "channels": [32, 32, 32, 32, 96], "attention": 16, "embedding": 24,
                      "embedding_std_norm": False}),
    # (with a variance normalisation of the embeddings, too)
    "resnet": (RESNET, {"n_mels": 40, "embedding": 24, "embedding_std_norm": True}),
    "xvector": (XVECTOR, {"n_mels": 40, "embedding": 24, "embedding_std_norm": False}),
}


def write_speechbrain_folder(folder, size="published"):
    """A SpeechBrain speaker model with random weights, random batch-norm statistics and a
    random embedding normalisation, saved in the hub layout."""
    os.makedirs(folder, exist_ok=True)
    network, sizes = SPEECHBRAIN_MODELS[size]
    text = HUB_YAML.format(embedding_model=network.format(**sizes), **sizes)
    with open(os.path.join(folder, "hyperparams.yaml"), "w") as handle:
        handle.write(text)
    torch.manual_seed(0)
    hub = load_hyperpyyaml(text)
    randomise(hub["embedding_model"])
    torch.save(hub["embedding_model"].state_dict(), os.path.join(folder, "embedding_model.ckpt"))
    torch.save(hub["classifier"].state_dict(), os.path.join(folder, "classifier.ckpt"))
    norm = hub["mean_var_norm_emb"]
    norm.glob_mean = torch.randn(sizes["embedding"])
    norm.glob_std = 0.5 + torch.rand(sizes["embedding"])
    norm.count = 1000
    norm._save(os.path.join(folder, "mean_var_norm_emb.ckpt"))
    hub["label_encoder"].update_from_iterable([f"id{i}" for i in range(7)])
    hub["label_encoder"].save(os.path.join(folder, "label_encoder.txt"))


@pytest.mark.parametrize("name, network", [("published", "ECAPA_TDNN"), ("resnet", "ResNet"), ("xvector", "Xvector")])
def test_imported_speechbrain_encoder_equals_speechbrains_encode_batch(tmp_path, name, network):
    """The reference is SpeechBrain's EncoderClassifier on the same folder, with the embedding
    normalisation (``encode_batch(..., normalize=True)``). Measured max abs difference on a padded
    batch of two clips: 0 for the three (the same computation; Xvector's statistics pooling adds
    Gaussian noise to the mean on every call, so both sides draw it from the same seed).
    SpeechBrain's ResNet returns ``(batch, size)``, not ``(batch, 1, size)``, and its global
    normalisation then adds a leading dimension: the reference is reshaped to ``(batch, size)``."""
    from speechbrain.inference.speaker import EncoderClassifier

    write_speechbrain_folder(tmp_path / "published", name)
    result = run_import("--speechbrain", str(tmp_path / "published"), "--output", str(tmp_path / "enc"))
    assert result.returncode == 0, result.stderr[-3000:]
    definition = load_folder(str(tmp_path / "enc"))
    size = SPEECHBRAIN_MODELS[name][1]["embedding"]
    assert type(definition["embedding_model"]).__name__ == network
    assert definition["encoder"].output_size == size and definition["sample_rate"] == 16000

    reference = EncoderClassifier.from_hparams(source=str(tmp_path / "published"), savedir=str(tmp_path / "sb"),
                                               overrides={"pretrained_path": str(tmp_path / "published")})
    wavs = torch.randn(2, 32000, generator=torch.Generator().manual_seed(2)) * 0.1
    wavs[1, 20000:] = 0
    lens = torch.tensor([1.0, 0.625])
    with torch.no_grad():
        torch.manual_seed(3)
        theirs = reference.encode_batch(wavs, lens, normalize=True).reshape(2, -1)
        torch.manual_seed(3)
        ours = pooled(definition, wavs, lens)
    difference = (ours - theirs).abs().max()
    print(f"{network}: max abs difference {difference:.2e} (max abs embedding {theirs.abs().max():.1f})")
    assert ours.shape == theirs.shape == (2, size)
    assert difference <= 1e-4
    # the embedding normalisation is applied: without it the embeddings differ by its mean
    with torch.no_grad():
        torch.manual_seed(3)
        raw = reference.encode_batch(wavs, lens, normalize=False).reshape(2, -1)
    norm = reference.hparams.mean_var_norm_emb
    std = norm.glob_std if norm.std_norm else torch.ones_like(norm.glob_std)
    assert (ours - (raw - norm.glob_mean) / std).abs().max() <= 1e-4
    assert (raw - ours).abs().max() > 0.1


def test_speechbrain_folder_problems_are_named(tmp_path):
    folder = tmp_path / "published"
    write_speechbrain_folder(folder, "small")
    state = torch.load(folder / "embedding_model.ckpt", weights_only=True)

    weight = state.pop("blocks.0.conv.conv.weight")
    torch.save(state, folder / "embedding_model.ckpt")
    with pytest.raises(EncoderFolderError, match=r"does not fit the embedding_model of hyperparams.yaml: "
                                                 r"missing keys: blocks.0.conv.conv.weight"):
        import_speechbrain_folder(str(folder))
    torch.save({**state, "blocks.0.conv.conv.weight": weight[:, :, :3]}, folder / "embedding_model.ckpt")
    with pytest.raises(EncoderFolderError, match=r"shape mismatch: blocks.0.conv.conv.weight: checkpoint \(32, 40, 3\)"):
        import_speechbrain_folder(str(folder))
    (folder / "embedding_model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderFolderError, match="cannot read .*embedding_model.ckpt"):
        import_speechbrain_folder(str(folder))
    torch.save({**state, "blocks.0.conv.conv.weight": weight}, folder / "embedding_model.ckpt")

    text = (folder / "hyperparams.yaml").read_text()
    (folder / "hyperparams.yaml").write_text(text.replace("norm_type: sentence", "norm_type: global"))
    with pytest.raises(EncoderFolderError, match="mean_var_norm has norm_type 'global'; only a per-utterance"):
        import_speechbrain_folder(str(folder))
    (folder / "hyperparams.yaml").write_text(text)

    os.remove(folder / "mean_var_norm_emb.ckpt")
    with pytest.raises(EncoderFolderError, match="holds no mean_var_norm_emb.ckpt"):
        import_speechbrain_folder(str(folder))

    text = (folder / "hyperparams.yaml").read_text()
    (folder / "hyperparams.yaml").write_text(text.replace("embedding_model", "speaker_network"))
    with pytest.raises(EncoderFolderError, match="defines no embedding_model"):
        import_speechbrain_folder(str(folder))


# ------------------------------------------------------------------------- the recipes ----


def test_an_override_against_the_encoder_folder_is_refused(wespeaker_resnet, tmp_path):
    write_wespeaker_folder(wespeaker_resnet, "small", tmp_path / "published")
    assert run_import("--wespeaker", str(tmp_path / "published"), "--output", str(tmp_path / "enc")).returncode == 0
    base = [sys.executable, "recipes/train.py", "hparams/resnet_ser.yaml", f"--data_folder={tmp_path / 'none'}",
            f"--output_folder={tmp_path / 'out'}", f"--pretrained_encoder={tmp_path / 'enc'}"]
    for flag, message in (("--n_mels=128", f"--n_mels 128 contradicts the encoder folder {tmp_path / 'enc'} (n_mels: 80)"),
                          ("--win_length=25", f"--win_length 25: the encoder folder {tmp_path / 'enc'} defines the "
                                              "features and the architecture and has no win_length")):
        result = subprocess.run([*base, flag], cwd=REPO_ROOT, capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1].startswith(f"train.py: error: {message}")
    result = subprocess.run([*base, "--encoder_values={n_mels: 64}"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--encoder_values {'n_mels': 64}: the encoder folder" in result.stderr
    # the folder's own values are no contradiction: the run goes on to the missing corpus
    result = subprocess.run([*base, "--n_mels=80", "--channels=[4, 8, 16, 32]"], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "IEMOCAP data folder does not exist" in result.stderr
