# Dashboards drawn for real: every shipped Dashboard Studio view rendered by Splunk's own @splunk/dashboard-core
# (npm, versions pinned in tests/render/package-lock.json) in headless Chromium (Debian's chromium package, apt),
# each data source answered with what the project's SPL model (tests/knowledge/splrun.py) computes from the demo's
# events (build/demo/events.jsonl: make demo, or make test, writes it).
#   make render-tools       npm ci in tests/render and apt-get install chromium when it is missing (once)
#   make dashboards-check   fails on a panel in an error / no-data / waiting state, a validation or console error,
#                           an unstubbed request, a dropdown missing a value, a failed drilldown click, or a
#                           deliberately broken copy of a view that draws without complaint;
#                           leaves build/dashboards/<view>.png and build/dashboards/report.json
#   make screenshots        copies the main dashboards' smaller PNGs (<view>.small.png) to docs/images/ (README, docs)
RENDER_DIR := tests/render
RENDER_STAMP := $(RENDER_DIR)/node_modules/.render-tools.stamp
RENDER_OUT := build/dashboards
DEMO_EVENTS := build/demo/events.jsonl
# Debian's chromium follows the distribution's security updates, so the exact version cannot stay pinned in the
# mirror: the package comes from the machine's apt sources and the check prints the version it drew with.
CHROMIUM_PACKAGES := chromium fonts-dejavu-core
ESBUILD_FLAGS := --bundle --minify --format=iife --jsx=automatic --loader:.js=jsx --log-level=warning \
	--define:process.env.NODE_ENV='"production"' --define:global=window
SCREENSHOTS := iot_defender_violations iot_defender_ports iot_defender_egress iot_defender_thing  # as results.py

.PHONY: render-tools chromium dashboards-check screenshots

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "chromium is missing: apt-get install $(CHROMIUM_PACKAGES)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(CHROMIUM_PACKAGES); }

# npm ci installs exactly the lockfile; no install scripts are needed (esbuild's binary comes as a package).
$(RENDER_STAMP): $(RENDER_DIR)/package.json $(RENDER_DIR)/package-lock.json
	cd $(RENDER_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

render-tools: $(RENDER_STAMP) chromium

dashboards-check: render-tools $(VENV)/.installed
	@test -f $(DEMO_EVENTS) || { echo "$(DEMO_EVENTS) is missing: run make demo first"; exit 1; }
	@mkdir -p $(RENDER_OUT) && rm -f $(RENDER_OUT)/*.png $(RENDER_OUT)/report.json
	$(PY) -m tests.render.results $(RENDER_OUT)
	$(RENDER_DIR)/node_modules/.bin/esbuild $(RENDER_DIR)/app.jsx $(ESBUILD_FLAGS) --outfile=$(RENDER_OUT)/bundle.js
	@chromium --version 2>/dev/null | head -n 1
	node $(RENDER_DIR)/render.js $(RENDER_OUT) "$$(command -v chromium)"

screenshots:
	@mkdir -p docs/images
	@for view in $(SCREENSHOTS); do \
		test -f $(RENDER_OUT)/$$view.small.png || { echo "run make dashboards-check first"; exit 1; }; \
		cp $(RENDER_OUT)/$$view.small.png docs/images/$$view.png && echo "docs/images/$$view.png"; \
	done
