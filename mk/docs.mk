# The documentation site (docs/, mkdocs.yml).
#   make docs         regenerate docs/reference/ from the sources of truth (scripts/make_docs_reference.py)
#   make docs-check   the reference pages are current, and mkdocs build --strict succeeds (site in build/site)
.PHONY: docs docs-check

docs: $(VENV)/.installed
	$(PY) scripts/make_docs_reference.py

docs-check: $(VENV)/.installed
	$(PY) scripts/make_docs_reference.py --check
	$(VENV)/bin/mkdocs build --strict --quiet
