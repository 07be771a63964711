/*
 * Browser side of `make dashboards-check`: draws one Dashboard Studio view with Splunk's own dashboard framework
 * (@splunk/dashboard-core, the Enterprise view-only preset) exactly as Splunk Web would, except that every data
 * source is answered from window.__RENDER__.results: the results the project's SPL model (tests/knowledge/splrun.py)
 * computes from the demo's events, keyed by data source id and the query after token substitution.
 *
 * A data source whose resolved query has no precomputed result is an "unstubbed data request": it is reported and
 * answered with an error, so the panel shows it and the check fails.
 *
 * The page is served by render.js (request interception, no server) at /en-US/app/<app>/<view>?form.<token>=...
 * like Splunk Web; form.* parameters become the initial token values, as in Splunk.
 */
import React from 'react';
import { createRoot } from 'react-dom/client';
import DashboardCore from '@splunk/dashboard-core';
import { DashboardContextProvider } from '@splunk/dashboard-context';
import EnterpriseViewOnlyPreset from '@splunk/dashboard-presets/EnterpriseViewOnlyPreset';
import SnapshotDataSource from '@splunk/datasources/SnapshotDataSource';
import SplunkThemeProvider from '@splunk/themes/SplunkThemeProvider';

const render = window.__RENDER__;
const problems = [];
const requests = [];
window.__renderProblems = problems;
window.__renderRequests = requests;

class ModelResults extends SnapshotDataSource {
    constructor(options = {}, context = {}) {
        const id = context.id;
        const key = `${id}\u0000${options.query}`;
        const result = render.results[key];
        requests.push({ id, query: options.query, answered: Boolean(result) });
        if (!result) {
            problems.push(`unstubbed data request: data source ${id} with query ${options.query}`);
        }
        super(
            result
                ? { data: result, meta: { status: 'done', isPreview: false } }
                : { errorLevel: 'error', error: `no model result for ${id}` },
            context
        );
    }
}

const preset = {
    ...EnterpriseViewOnlyPreset,
    dataSources: {
        ...EnterpriseViewOnlyPreset.dataSources,
        'ds.search': ModelResults,
        'ds.chain': ModelResults,
        'ds.savedSearch': ModelResults,
    },
};

function formTokens() {
    const tokens = {};
    new URLSearchParams(window.location.search).forEach((value, key) => {
        if (key.startsWith('form.')) tokens[key.slice(5)] = value;
    });
    // form.global_time.earliest / .latest set the time range token as an object
    const time = {};
    Object.keys(tokens).forEach((key) => {
        const m = key.match(/^(.+)\.(earliest|latest)$/);
        if (m) {
            time[m[1]] = { ...(time[m[1]] || {}), [m[2]]: tokens[key] };
            delete tokens[key];
        }
    });
    Object.entries(time).forEach(([token, value]) => {
        tokens[token] = value;
    });
    return tokens;
}

const view = window.location.pathname.split('/').pop();
const definition = render.definitions[view];
window.__renderView = view;
window.__renderTokens = formTokens();

function Page() {
    return (
        <SplunkThemeProvider family="enterprise" colorScheme="light" density="comfortable">
            <DashboardContextProvider
                preset={preset}
                initialDefinition={definition}
                initialTokenBinding={{ default: window.__renderTokens }}
                onTokenBindingChange={(tokens) => {
                    window.__renderTokenState = tokens;
                }}
            >
                <DashboardCore
                    width="100%"
                    height="100%"
                    onValidationError={(error) => problems.push(`validation error: ${JSON.stringify(error)}`)}
                />
            </DashboardContextProvider>
        </SplunkThemeProvider>
    );
}

if (!definition) {
    problems.push(`no definition for view ${view}`);
} else {
    createRoot(document.getElementById('root')).render(<Page />);
}
