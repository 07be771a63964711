#!/usr/bin/env node
/*
 * Validates the add-on's Dashboard Studio dashboards (XML views with version="2" and a JSON definition in
 * CDATA) against the dashboard schema of @splunk/dashboard-definition (the version pinned in package.json):
 *
 * - the package's own schema (defaultSchema), specialised with createSchemaBasedOnDicts() so that
 *   visualization types are limited to the ones listed below and their options are checked against the
 *   option schemas Splunk publishes in @splunk/visualization-schemas (a dependency of the package);
 * - data source and input types limited to the ones below; input options checked against the documented
 *   options (the package ships no input schemas; these are ours and say so);
 * - cross references the schema cannot express: every data source, input, layout item, tab and chain parent
 *   referenced exists; every visualization is placed; every $token$ used is set by an input, a drilldown or
 *   the defaults; drilldown links point at views of this app that exist.
 *
 * Usage: node validate_dashboards.js <views dir> [--json]
 * Prints one line per dashboard (or a JSON report with --json); exits 1 when any dashboard is invalid.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const definitionPackage = require('@splunk/dashboard-definition');
const vizSchemas = require('@splunk/visualization-schemas');
// ajv as the definition package itself depends on it (same major version as Splunk's own tooling).
const Ajv = require(require.resolve('ajv', { paths: [require.resolve('@splunk/dashboard-definition')] }));

const APP = 'TA-aws-iot-defender';

const visualizationDict = {
    'splunk.table': vizSchemas.tableOptionsSchema,
    'splunk.line': vizSchemas.lineOptionsSchema,
    'splunk.area': vizSchemas.areaOptionsSchema,
    'splunk.column': vizSchemas.columnOptionsSchema,
    'splunk.bar': vizSchemas.barOptionsSchema,
    'splunk.pie': vizSchemas.pieOptionsSchema,
    'splunk.singlevalue': vizSchemas.singleValueOptionsSchema,
    'splunk.markdown': vizSchemas.markdownOptionsSchema,
};

const stringOrDsl = { type: 'string' };
const itemsSchema = {
    anyOf: [
        {
            type: 'array',
            items: {
                type: 'object',
                required: ['label', 'value'],
                properties: { label: { type: 'string' }, value: { type: 'string' } },
                additionalProperties: false,
            },
        },
        { type: 'string', pattern: '^>' },
    ],
};
const inputDict = {
    'input.timerange': {
        token: { type: 'string' },
        defaultValue: { type: 'string' },
    },
    'input.dropdown': {
        token: { type: 'string' },
        defaultValue: stringOrDsl,
        items: itemsSchema,
        selectFirstSearchResult: { type: 'boolean' },
    },
    'input.text': {
        token: { type: 'string' },
        defaultValue: { type: 'string' },
    },
};

// combineSchema() reads an "extend" key of an options schema as "use this whole schema for options", so each
// data source type gives its complete options schema that way (which also lets us forbid unknown options).
const dataSourceDict = {
    'ds.search': {
        extend: {
            type: 'object',
            required: ['query'],
            additionalProperties: false,
            properties: {
                query: { type: 'string', minLength: 1 },
                queryParameters: {
                    type: 'object',
                    properties: { earliest: { type: 'string' }, latest: { type: 'string' } },
                    additionalProperties: false,
                },
                refresh: { type: 'string' },
                refreshType: { type: 'string', enum: ['delay', 'interval'] },
                enableSmartSources: { type: 'boolean' },
            },
        },
    },
    'ds.chain': {
        extend: {
            type: 'object',
            required: ['extend', 'query'],
            additionalProperties: false,
            properties: {
                extend: { type: 'string', pattern: '^[a-zA-Z0-9_-]+$' },
                query: { type: 'string', pattern: '^\\s*\\|' },
                enableSmartSources: { type: 'boolean' },
            },
        },
    },
};

const layoutDict = { grid: {}, absolute: {} };

function buildSchema() {
    return definitionPackage.createSchemaBasedOnDicts({ layoutDict, dataSourceDict, visualizationDict, inputDict });
}

function extractDefinition(xml) {
    const root = xml.match(/<dashboard\b([^>]*)>/);
    if (!root) throw new Error('no <dashboard> root element');
    if (!/\bversion\s*=\s*"2"/.test(root[1])) throw new Error('<dashboard> is not version="2" (Dashboard Studio)');
    const def = xml.match(/<definition>\s*<!\[CDATA\[([\s\S]*?)\]\]>\s*<\/definition>/);
    if (!def) throw new Error('no <definition><![CDATA[...]]></definition>');
    const label = xml.match(/<label>([^<]*)<\/label>/);
    if (!label || !label[1].trim()) throw new Error('no <label>');
    return JSON.parse(def[1]);
}

const TOKEN_RE = /\$([A-Za-z0-9_.:|-]+?)\$/g;

function tokensIn(value, found = new Set()) {
    if (typeof value === 'string') {
        for (const m of value.matchAll(TOKEN_RE)) found.add(m[1].split('|')[0]);
    } else if (Array.isArray(value)) {
        value.forEach((v) => tokensIn(v, found));
    } else if (value && typeof value === 'object') {
        Object.values(value).forEach((v) => tokensIn(v, found));
    }
    return found;
}

function crossReferences(def, views) {
    const errors = [];
    const ds = def.dataSources || {};
    const viz = def.visualizations || {};
    const inputs = def.inputs || {};
    const layout = def.layout || {};
    const defined = new Set();
    Object.values(inputs).forEach((input) => {
        const token = input.options && input.options.token;
        if (token) defined.add(token);
    });
    const handlers = [...Object.values(viz), ...Object.values(inputs)].flatMap((item) => item.eventHandlers || []);
    handlers.forEach((handler) => {
        ((handler.options && handler.options.tokens) || []).forEach((t) => defined.add(t.token));
    });
    Object.keys((def.defaults && def.defaults.tokens && def.defaults.tokens.default) || {}).forEach((t) => defined.add(t));

    const knownDataSource = (id, where) => {
        if (!ds[id]) errors.push(`${where} uses data source "${id}" that does not exist`);
    };
    Object.entries(viz).forEach(([id, item]) => {
        Object.values(item.dataSources || {}).forEach((dsId) => knownDataSource(dsId, `visualization ${id}`));
        // the package lets unknown options through (additionalProperties); Splunk ignores them silently, we do not
        const known = visualizationDict[item.type] || {};
        Object.keys(item.options || {}).forEach((option) => {
            if (!(option in known)) errors.push(`visualization ${id} (${item.type}) has unknown option "${option}"`);
        });
        if (item.type !== 'splunk.markdown' && !(item.dataSources && item.dataSources.primary)) {
            errors.push(`visualization ${id} has no primary data source`);
        }
    });
    Object.entries(inputs).forEach(([id, item]) => {
        Object.values(item.dataSources || {}).forEach((dsId) => knownDataSource(dsId, `input ${id}`));
    });
    Object.entries(ds).forEach(([id, item]) => {
        if (item.type === 'ds.chain') {
            const parent = item.options && item.options.extend;
            if (!ds[parent]) errors.push(`chain ${id} extends "${parent}" that does not exist`);
        }
        if (!item.name) errors.push(`data source ${id} has no name`);
    });
    const used = new Set(Object.values(viz).flatMap((item) => Object.values(item.dataSources || {})));
    Object.values(inputs).forEach((item) => Object.values(item.dataSources || {}).forEach((d) => used.add(d)));
    Object.values(ds).forEach((item) => item.type === 'ds.chain' && used.add(item.options.extend));
    Object.keys(ds).forEach((id) => used.has(id) || errors.push(`data source ${id} is not used`));

    const placed = new Set();
    const layoutDefinitions = layout.layoutDefinitions || {};
    ((layout.tabs && layout.tabs.items) || []).forEach((tab) => {
        if (!layoutDefinitions[tab.layoutId]) errors.push(`tab "${tab.label}" has no layout ${tab.layoutId}`);
    });
    Object.entries(layoutDefinitions).forEach(([layoutId, definition]) => {
        (definition.structure || []).forEach((block) => {
            if (!viz[block.item] && !inputs[block.item]) errors.push(`layout ${layoutId} places unknown item ${block.item}`);
            placed.add(block.item);
        });
    });
    (layout.globalInputs || []).forEach((id) => {
        if (!inputs[id]) errors.push(`global input ${id} does not exist`);
        placed.add(id);
    });
    Object.keys(viz).forEach((id) => placed.has(id) || errors.push(`visualization ${id} is not placed in any layout`));
    Object.keys(inputs).forEach((id) => placed.has(id) || errors.push(`input ${id} is not placed`));

    const builtin = (name) => name.startsWith('row.') || name.startsWith('click.') || name.startsWith('value') || name === 'name';
    const checkTokens = (value, where) => {
        tokensIn(value).forEach((token) => {
            const base = token.split('.')[0];
            if (builtin(token)) return;
            if (!defined.has(token) && !defined.has(base)) errors.push(`${where} uses token $${token}$ that nothing sets`);
        });
    };
    Object.entries(ds).forEach(([id, item]) => checkTokens(item.options, `data source ${id}`));
    Object.entries(viz).forEach(([id, item]) => checkTokens({ t: item.title, d: item.description, o: item.options }, `visualization ${id}`));
    checkTokens(def.defaults, 'defaults');

    handlers.forEach((handler) => {
        const url = handler.options && handler.options.url;
        if (handler.type === 'drilldown.customUrl' && typeof url === 'string') {
            const m = url.match(/^\/app\/([^/]+)\/([^?#]+)/);
            if (!m) errors.push(`drilldown URL ${url} is not a path of this Splunk instance`);
            else if (m[1] !== APP) errors.push(`drilldown URL ${url} leaves the app`);
            else if (m[2] !== 'search' && !views.has(m[2])) errors.push(`drilldown URL ${url} targets missing view ${m[2]}`);
        }
        if (handler.type === 'drilldown.linkToDashboard') {
            const target = handler.options && handler.options.dashboard;
            if (handler.options.app !== APP || !views.has(target)) errors.push(`drilldown links to missing dashboard ${target}`);
        }
    });
    return errors;
}

function validateDirectory(dir) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(buildSchema());
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.xml')).sort();
    const views = new Set(files.map((f) => f.replace(/\.xml$/, '')));
    const report = [];
    files.forEach((file) => {
        const xml = fs.readFileSync(path.join(dir, file), 'utf8');
        if (!/<dashboard\b[^>]*\bversion\s*=\s*"2"/.test(xml)) {
            report.push({ file, studio: false, errors: [] });
            return;
        }
        let errors = [];
        let counts = {};
        try {
            const def = extractDefinition(xml);
            if (!validate(def)) {
                errors = validate.errors.map((e) => `schema: ${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
            }
            errors = errors.concat(crossReferences(def, views));
            counts = {
                visualizations: Object.keys(def.visualizations || {}).length,
                dataSources: Object.keys(def.dataSources || {}).length,
                inputs: Object.keys(def.inputs || {}).length,
            };
        } catch (err) {
            errors.push(String(err && err.message ? err.message : err));
        }
        report.push({ file, studio: true, errors, ...counts });
    });
    return report;
}

function main(argv) {
    const dir = argv[2];
    if (!dir) {
        console.error('usage: node validate_dashboards.js <views dir> [--json]');
        return 2;
    }
    const report = validateDirectory(dir);
    const version = require('@splunk/dashboard-definition/package.json').version;
    if (argv.includes('--json')) {
        console.log(JSON.stringify({ schemaPackage: `@splunk/dashboard-definition@${version}`, dashboards: report }, null, 1));
    } else {
        report.forEach((r) => {
            const state = !r.studio ? 'skipped (not Dashboard Studio)' : r.errors.length ? 'INVALID' : 'valid';
            console.log(`${r.file}: ${state}`);
            r.errors.forEach((e) => console.log(`  - ${e}`));
        });
    }
    return report.some((r) => r.errors.length) ? 1 : 0;
}

if (require.main === module) {
    process.exitCode = main(process.argv);
}

module.exports = { validateDirectory, buildSchema, extractDefinition };
