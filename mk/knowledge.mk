# Knowledge objects (props, searches, dashboards): tooling owned by that part.
#   make knowledge-tools  npm ci of the Dashboard Studio schema validator (tests/knowledge/node_modules), once
#   make knowledge-test   its pytest suite (field checks, schema validation, ksconf, lookup content)
#   make ksconf-check     ksconf check of package/default/*.conf
#   make dashboards       regenerate the Dashboard Studio views from scripts/make_dashboards.py
KNOWLEDGE_DIR := tests/knowledge
KNOWLEDGE_STAMP := $(KNOWLEDGE_DIR)/node_modules/.knowledge-tools.stamp

.PHONY: knowledge-tools knowledge-test ksconf-check dashboards

knowledge-tools: $(KNOWLEDGE_STAMP)

# npm ci installs exactly the lockfile (pinned @splunk/dashboard-definition); no install scripts are needed.
$(KNOWLEDGE_STAMP): $(KNOWLEDGE_DIR)/package.json $(KNOWLEDGE_DIR)/package-lock.json
	cd $(KNOWLEDGE_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

knowledge-test: knowledge-tools $(VENV)/.installed
	$(PY) -m pytest tests/knowledge -q

ksconf-check: $(VENV)/.installed
	$(VENV)/bin/ksconf check package/default/*.conf

dashboards: $(VENV)/.installed
	$(PY) scripts/make_dashboards.py
