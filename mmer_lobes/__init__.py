"""mmer_lobes: building blocks for multimodal (speech + text) emotion recognition in SpeechBrain."""

__version__ = "0.1.0"
