# BrainScan. `make run` starts it, `make test` checks it; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VAR := var
STAMP := $(VENV)/.requirements-stamp
PORT ?= 8000
HOST ?= 127.0.0.1
WORKER_CONCURRENCY ?= 1
BENCH_IMAGES ?= 60
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Secrets for the embedded mode are generated once under var/ unless given in the environment.
ifeq ($(origin SECRET_KEY),undefined)
export SECRET_KEY_FILE ?= $(CURDIR)/$(VAR)/secret_key
endif
ifeq ($(origin PATIENT_REF_KEY),undefined)
export PATIENT_REF_KEY_FILE ?= $(CURDIR)/$(VAR)/patient_ref_key
endif

.PHONY: run test lint bench bench-tools pacs-tools ocr-tools lock setup deps

# Beat (the periodic sweep) runs as its own process, as in docker-compose.yml: a restarted worker
# never adds a second scheduler. gunicorn's settings are in brainscan/gunicorn.conf.py.
run: setup
	@echo "BrainScan: http://$(HOST):$(PORT)/  -- first admin: see above or $(VAR)/admin-password.txt. Ctrl-C stops web, worker and beat."
	@trap 'kill $$worker $$beat $$web 2>/dev/null; wait' INT TERM EXIT; \
	$(VENV)/bin/celery -A brainscan worker --concurrency $(WORKER_CONCURRENCY) --loglevel INFO & worker=$$!; \
	$(VENV)/bin/celery -A brainscan beat --schedule $(VAR)/celerybeat-schedule --loglevel INFO & beat=$$!; \
	$(VENV)/bin/gunicorn brainscan.wsgi -c brainscan/gunicorn.conf.py --bind $(HOST):$(PORT) & web=$$!; \
	wait -n $$worker $$beat $$web

test: deps $(VAR)/secret_key $(VAR)/patient_ref_key
	$(PY) -m pytest $(PYTEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Model serving, Keras and LiteRT side by side (load, batch-1 latency on one core, batch-32
# throughput, memory, explanation cost), then every task's model loaded in one worker-like process
# (latency per task, memory with all of them and the modality check), upload-to-result latency, throughput and memory with a
# warm LiteRT worker on real images from ../shared,
# analytics page times with a warm cache, the 50-scan case page and the viewer (render times),
# then ApacheBench on the case list (127.0.0.1 only, bounded request counts), idle and while a
# worker classifies 100 uploads.
bench: setup bench-tools
	$(PY) -m ml.bench --json $(VAR)/ml-bench.json
	$(PY) -m ml.bench --tasks --json $(VAR)/ml-bench-tasks.json
	$(PY) manage.py bench_pipeline --images $(BENCH_IMAGES)
	$(PY) manage.py bench_analytics
	$(PY) manage.py bench_pages
	$(PY) manage.py bench_load

# ApacheBench (Debian package apache2-utils) for the load step, installed when missing.
bench-tools:
	@command -v ab >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y --no-install-recommends apache2-utils; }

# Orthanc and its DICOMweb plugin (Debian packages) for the PACS tests, which start their own on
# loopback; Debian's own orthanc service is stopped and disabled, so nothing else listens.
pacs-tools:
	@[ -x /usr/sbin/Orthanc ] && [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || { \
	$(SUDO) apt-get update -q && $(SUDO) apt-get install -y --no-install-recommends orthanc orthanc-dicomweb && \
	{ $(SUDO) service orthanc stop >/dev/null 2>&1; $(SUDO) update-rc.d orthanc disable >/dev/null 2>&1; true; }; }

setup: deps $(VAR)/secret_key $(VAR)/patient_ref_key
	$(PY) manage.py migrate --noinput
	$(PY) manage.py sync_models
	$(PY) manage.py ensure_admin
	$(PY) manage.py collectstatic --noinput --verbosity 0

deps: $(STAMP) ocr-tools

# Debian's tesseract reads text burnt into uploaded pictures (cases/burnedin.py: such scans are held
# for a data steward); installed when missing, as the web process and the tests need it.
ocr-tools:
	@command -v tesseract >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng; }

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the pinned requirements change. requirements-dev.txt includes
# requirements-ml.txt (TensorFlow, Keras: training, evaluation, export), which includes
# requirements.txt (web and worker: what the Docker image installs).
$(STAMP): requirements.txt requirements-ml.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(VAR)/secret_key $(VAR)/patient_ref_key:
	@mkdir -p $(VAR)
	@umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))" > $@

# Pin what the virtual environment has: the runtime set resolved from requirements.in, the ML set
# from requirements.in + requirements-ml.in (less the runtime set), the rest is dev-only.
lock: | $(PY)
	@mkdir -p $(VAR)
	$(PY) -m pip install --dry-run --ignore-installed --quiet --report $(VAR)/runtime.json -r requirements.in
	$(PY) -m pip install --dry-run --ignore-installed --quiet --report $(VAR)/ml.json -r requirements.in -r requirements-ml.in
	$(PY) -m pip freeze --exclude-editable > $(VAR)/freeze.txt
	$(PY) -c "import json, re; norm = lambda n: re.sub(r'[-_.]+', '-', n).lower(); \
	names = lambda f: {norm(p['metadata']['name']) for p in json.load(open(f))['install']}; \
	runtime = names('$(VAR)/runtime.json'); ml = names('$(VAR)/ml.json') - runtime; \
	pins = [l for l in open('$(VAR)/freeze.txt').read().splitlines() if '==' in l]; \
	files = [('requirements.txt', 'requirements.in', '', lambda n: n in runtime), \
	         ('requirements-ml.txt', 'requirements-ml.in', '-r requirements.txt\n', lambda n: n in ml), \
	         ('requirements-dev.txt', 'requirements-dev.in', '-r requirements-ml.txt\n', lambda n: n not in runtime | ml)]; \
	[open(out, 'w').write(f'# Generated by make lock from {src}; do not edit.\n' + ref \
	 + '\n'.join(p for p in pins if keep(norm(p.split('==')[0]))) + '\n') for out, src, ref, keep in files]"
