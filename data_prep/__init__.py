"""Corpus preparation: one module per corpus, raw corpus in, JSON manifests out."""
