# make demo | make test | make local | make bench — each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cat requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
C7N_VENV := bench/.venv-c7n
C7N_INSTALLED := $(C7N_VENV)/.installed-$(shell cat bench/requirements-c7n.txt | cksum | cut -d' ' -f1)

.PHONY: install test demo local policies settings bench deploy destroy package drill stage-given clean

install: $(INSTALLED)

$(INSTALLED): requirements-dev.txt pyproject.toml
	@$(PYTHON) tools/install.py $(VENV) requirements-dev.txt --editable . --marker $@

test: install
	$(BIN)/python -m pytest -n 2  # two workers, each with its own embedded AWS

demo: install
	$(BIN)/python -m local.demo

local: install
	$(BIN)/python -m local

# Benchmarks beside Cloud Custodian (in its own venv: c7n pins another boto3); writes
# bench/RESULTS.md. About 19 minutes here (2 shared cores), 10 of them the 5,000 further findings,
# 1.5 the tamper watch (`python -m bench --only tamper` runs that alone and writes nothing).
bench: install $(C7N_INSTALLED)
	BENCH_VIA_MAKE=1 $(BIN)/python -m bench

$(C7N_INSTALLED): bench/requirements-c7n.txt
	@$(PYTHON) tools/install.py $(C7N_VENV) bench/requirements-c7n.txt --marker $@

# Regenerate .chalice/policy-<stage>-<function>.json from what the code declares, and the
# guardrails SCP (deploy/guardrails-scp.json).
policies: install
	$(BIN)/python -m deploy.permissions .chalice
	$(BIN)/python -m deploy.guardrails

# Regenerate the README's settings tables and config.json's app-wide defaults from
# chalicelib/settings.py.
settings: install
	$(BIN)/python -m deploy.settings_files

# One stage into the account and region of your AWS credentials (see README, "Deploying").
# With AWS_ENDPOINT_URL set, a rehearsal on the embedded AWS (`make local`) instead.
STAGE ?=
stage-given:
	@test -n "$(STAGE)" || { echo "STAGE is required: make $(MAKECMDGOALS) STAGE=dev|prod"; exit 2; }

deploy: install stage-given
	$(BIN)/python -m deploy deploy --stage $(STAGE)$(if $(ALERT_EMAIL), --alert-email $(ALERT_EMAIL))$(if $(EVIDENCE_RETENTION_DAYS), --evidence-retention-days $(EVIDENCE_RETENTION_DAYS))$(if $(EVIDENCE_LOCK_MODE), --evidence-lock-mode $(EVIDENCE_LOCK_MODE))

destroy: install stage-given
	$(BIN)/python -m deploy destroy --stage $(STAGE)$(if $(filter 1 true yes,$(PURGE)), --purge)$(if $(filter 1 true yes,$(FORCE)), --force)

package: install stage-given
	$(BIN)/python -m deploy package --stage $(STAGE)

# A fire drill after `make deploy`: a canary launched, quarantined through the API, checked,
# released, checked, and everything it made deleted (README, "Fire drill"). A few cents.
drill: install stage-given
	$(BIN)/python -m deploy drill --stage $(STAGE)$(if $(API_URL), --api-url $(API_URL))

clean:
	rm -rf $(VENV) $(C7N_VENV) .pytest_cache .hypothesis build
