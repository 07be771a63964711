# Splunk's content tool (contentctl, pinned in requirements/contentctl.txt, its own venv): validates every detection
# offline (--no-enrichments: no ATT&CK/CVE download). scripts/make_detections.py --contentctl translates
# detections/*.yml into a contentctl project made by `contentctl init` (its sample content removed).
VENV_CONTENTCTL := .venv-contentctl
CONTENTCTL_DIR := build/contentctl

.PHONY: contentctl-check

$(VENV_CONTENTCTL)/.installed: requirements/contentctl.txt
	$(PYTHON) -m venv $(VENV_CONTENTCTL)
	$(VENV_CONTENTCTL)/bin/pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(VENV_CONTENTCTL)/bin/pip install -q -r requirements/contentctl.txt
	touch $@

contentctl-check: $(VENV_CONTENTCTL)/.installed
	rm -rf $(CONTENTCTL_DIR) && mkdir -p $(CONTENTCTL_DIR)
	cd $(CONTENTCTL_DIR) && ../../$(VENV_CONTENTCTL)/bin/contentctl init > init.log 2>&1 || { cat init.log; exit 1; }
	$(PY) scripts/make_detections.py --contentctl $(CONTENTCTL_DIR)
	cd $(CONTENTCTL_DIR) && ../../$(VENV_CONTENTCTL)/bin/contentctl validate --no-enrichments > validate.log 2>&1 \
		|| { cat validate.log; exit 1; }
	@echo "contentctl validate --no-enrichments: $$(ls $(CONTENTCTL_DIR)/detections/cloud/*.yml | wc -l) detections valid"
