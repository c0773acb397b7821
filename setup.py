"""Installs mmer_lobes (the building blocks) and data_prep (corpus preparation)."""
from setuptools import setup

setup(
    name="mmer",
    version="0.1.0",
    description=(
        "Multimodal (speech + text) emotion recognition recipes for SpeechBrain, after "
        "Padi et al. (2022): ResNet34 speaker-transfer, BERT text, late fusion, LOSO on IEMOCAP"
    ),
    packages=["mmer_lobes", "data_prep", "data_prep.minicorpus"],
    package_data={"data_prep.minicorpus": ["sentences.json"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
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
        "espeakng-loader",
    ],
    entry_points={"console_scripts": ["mmer-predict=mmer_lobes.predict:main"]},
)
