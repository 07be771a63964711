#!/usr/bin/env node
/*
 * `make dashboards-check`, browser part: draws every shipped Dashboard Studio view with Splunk's own dashboard
 * framework (the bundle of app.jsx) in headless Chromium and fails when a view does not draw cleanly.
 *
 * Input: <build>/results.json written by tests/render/model_results.py (view definitions, the model's result for
 * every data source, the scenarios to draw and the drilldown to click). Output: one PNG per view in <build>/ and
 * <build>/report.json; exit 1 on any problem:
 *
 * - a panel in an error / no-data / waiting state (Dashboard Studio draws those inside the panel and logs nothing,
 *   so every panel's DOM is inspected for the markers it uses), or a panel that never drew;
 * - a validation error reported by DashboardCore (onValidationError);
 * - a console error or an uncaught page error;
 * - a request the page makes that is not stubbed (the page is served under a fake origin through request
 *   interception: no server, no network; only the Splunk Web endpoints the Enterprise time-range input reads are
 *   answered, with tiny fixed JSON);
 * - a data source whose query (after token substitution) has no result from the model;
 * - the scripted click on a thing row that does not land on the Thing dashboard with the token set.
 *
 * Usage: node render.js <build dir> <chromium executable>
 */
'use strict';

const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const ORIGIN = 'http://splunk.invalid';
const APP = 'TA-aws-iot-defender';
const WIDTH = 1480;
// data-test markers Dashboard Studio puts in a panel instead of a visualization
const BAD_MARKERS = ['dashboard-message', 'message', 'viz-waiting-for-input', 'icon-placeholder', 'status-icon-container'];
const SETTLE_TIMEOUT_MS = 60000;
const REDRAW_MS = 1200;
const VALIDATION_TIMEOUT_MS = 60000;
const THUMBNAIL_WIDTH = 960;
const THUMBNAIL_SOURCE_HEIGHT = 1100;
const PARALLEL = Number(process.env.RENDER_PARALLEL || 2);
// what a panel shows once its visualization has drawn
const DRAWN = '[data-test="majorValue"], [data-test="cell"], [data-test="charting-container"] svg, canvas, .markdown, [data-test="markdown"], h2';

// The Splunk Web endpoints the Enterprise time-range input reads (tiny fixed answers) and the browser's favicon.
function stubFor(pathname) {
    if (pathname === '/en-US/splunkd/__raw/services/authentication/current-context') {
        return { entry: [{ name: 'admin', content: { username: 'admin', realname: 'Administrator', roles: ['admin'], tz: 'UTC' } }] };
    }
    if (/^\/en-US\/splunkd\/__raw\/servicesNS\/admin\/[^/]+\/data\/ui\/times$/.test(pathname)) {
        return { entry: [], paging: { total: 0, perPage: 0, offset: 0 } };
    }
    if (pathname === '/favicon.ico') return null;
    return undefined;
}

function page(results) {
    const $C = {
        SPLUNKD_PATH: '/en-US/splunkd/__raw',
        MRSPARKLE_ROOT_PATH: '',
        LOCALE: 'en-US',
        USERNAME: 'admin',
        APP,
        SERVER_ZONEINFO: 'TZif2\n',
        SERVER_TIMEZONE_OFFSET: 0,
        VERSION_LABEL: '10.0.0',
    };
    return `<!doctype html><html><head><meta charset="utf-8"><title>render</title>
<link rel="stylesheet" href="/static/render/bundle.css">
<style>html,body,#root{margin:0;width:${WIDTH}px;min-height:100%;background:#fff}</style>
<script>window.$C=${JSON.stringify($C)};window.__RENDER__=${results};</script></head>
<body><div id="root"></div><script src="/static/render/bundle.js"></script></body></html>`;
}

async function serve(browserPage, buildDir, resultsText, problems) {
    await browserPage.setRequestInterception(true);
    const html = page(resultsText.replace(/</g, '\\u003c'));
    browserPage.on('request', (request) => {
        const url = new URL(request.url());
        if (url.origin === ORIGIN) {
            if (url.pathname.startsWith(`/en-US/app/${APP}/`) || url.pathname.startsWith(`/app/${APP}/`)) {
                request.respond({ status: 200, contentType: 'text/html', body: html });
                return;
            }
            if (url.pathname === '/static/render/bundle.js' || url.pathname === '/static/render/bundle.css') {
                const file = path.join(buildDir, path.basename(url.pathname));
                const type = file.endsWith('.js') ? 'application/javascript' : 'text/css';
                request.respond({ status: 200, contentType: type, body: fs.readFileSync(file) });
                return;
            }
            const stub = stubFor(url.pathname);
            if (stub !== undefined) {
                request.respond(stub === null ? { status: 204, body: '' } : { status: 200, contentType: 'application/json', body: JSON.stringify(stub) });
                return;
            }
        }
        if (url.protocol === 'data:') {
            request.continue();
            return;
        }
        problems.push(`unstubbed request: ${request.method()} ${request.url()}`);
        request.abort();
    });
}

async function settle(browserPage, panels) {
    // every panel of the layout is on the page and shows either something drawn or a state marker
    await browserPage.waitForFunction(
        (ids, bad, drawn) =>
            ids.every((id) => {
                const panel = document.querySelector(`[data-test="viz-item"][data-id="${id}"]`);
                if (!panel) return false;
                if (bad.some((marker) => panel.querySelector(`[data-test="${marker}"]`))) return true;
                return Boolean(panel.querySelector(drawn));
            }),
        { timeout: SETTLE_TIMEOUT_MS, polling: 200 },
        panels,
        BAD_MARKERS,
        DRAWN
    );
}

async function inspectPanels(browserPage, markers) {
    return browserPage.evaluate((bad, drawnSelector) => {
        return [...document.querySelectorAll('[data-test="viz-item"][data-id]')].map((panel) => {
            const id = panel.getAttribute('data-id');
            const found = bad.filter((marker) => panel.querySelector(`[data-test="${marker}"]`));
            const texts = found.map((marker) => (panel.querySelector(`[data-test="${marker}"]`).textContent || '').trim());
            const drawn = Boolean(panel.querySelector(drawnSelector));
            return { id, type: panel.getAttribute('data-viz-type'), found, texts, drawn };
        });
    }, markers, DRAWN);
}

async function dropdownOptions(browserPage, inputId) {
    // open the dropdown (a few tries: on a busy machine the first click can land while the input re-renders) and
    // read the options of the popover its toggle controls; then close it (best effort: pages render in parallel
    // and only the focused one gets focus and key events, so the reading never depends on the closing)
    const toggle = `[data-input-id="${inputId}"] button`;
    const toggleId = await browserPage.$eval(toggle, (button) => button.id);
    const options = `[aria-labelledby="${toggleId}"] [role="option"], [aria-labelledby="${toggleId}"] [role="menuitemradio"]`;
    for (let attempt = 1; ; attempt++) {
        await browserPage.click(toggle);
        try {
            await browserPage.waitForSelector(options, { timeout: 10000 });
            break;
        } catch (error) {
            if (attempt === 3) throw new Error(`no options after ${attempt} clicks`);
        }
    }
    const found = await browserPage.$$eval(options, (items) => items.map((e) => (e.textContent || '').trim()));
    await browserPage.click(toggle).catch(() => undefined);
    return found;
}

async function checkDropdowns(browserPage, scenario) {
    const problems = [];
    await browserPage.bringToFront();
    for (const [inputId, wanted] of Object.entries(scenario.dropdowns || {})) {
        try {
            const options = await dropdownOptions(browserPage, inputId);
            if (JSON.stringify(options) !== JSON.stringify(wanted)) {
                problems.push(`dropdown ${inputId} lists ${JSON.stringify(options)}, not ${JSON.stringify(wanted)}`);
            }
        } catch (error) {
            problems.push(`dropdown ${inputId} did not open: ${error.message.split('\n')[0]}`);
        }
    }
    return problems;
}

async function renderView(browser, buildDir, resultsText, scenario) {
    const problems = [];
    const browserPage = await browser.newPage();
    await browserPage.setViewport({ width: WIDTH, height: 1000 });
    browserPage.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    browserPage.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await serve(browserPage, buildDir, resultsText, problems);
    // DashboardCore validates the definition in a Web Worker (posted {schema, definition}; it answers the errors or
    // null) and reports errors through onValidationError when the answer comes, which can be seconds after the
    // panels drew: count the validator's answers so the check waits for its verdict
    await browserPage.evaluateOnNewDocument(() => {
        window.__renderValidated = 0;
        const NativeWorker = window.Worker;
        window.Worker = class extends NativeWorker {
            constructor(...args) {
                super(...args);
                this.addEventListener('message', () => {
                    if (this.validates) window.__renderValidated += 1;
                });
            }

            postMessage(message, ...rest) {
                if (message && typeof message === 'object' && 'definition' in message && 'schema' in message) {
                    this.validates = true;
                }
                return super.postMessage(message, ...rest);
            }
        };
    });
    const timings = { started: Date.now() };
    await browserPage.goto(`${ORIGIN}${scenario.url}`, { waitUntil: 'load' });
    timings.loaded = Date.now();
    const expected = scenario.panels || [];
    try {
        await settle(browserPage, expected);
    } catch (error) {
        problems.push(`the dashboard did not settle: ${error.message.split('\n')[0]}`);
    }
    timings.settled = Date.now();
    try {
        await browserPage.waitForFunction(
            () => window.__renderValidated > 0,
            { timeout: VALIDATION_TIMEOUT_MS, polling: 100 }
        );
    } catch (error) {
        problems.push('the definition was never validated (no answer from the validation worker)');
    }
    timings.validated = Date.now();
    // the whole page in the viewport (charts size themselves to it), then a moment for them to redraw
    const height = await browserPage.evaluate(() => document.documentElement.scrollHeight);
    await browserPage.setViewport({ width: WIDTH, height: Math.max(600, Math.ceil(height)) });
    await new Promise((resolve) => setTimeout(resolve, REDRAW_MS));
    const panels = await inspectPanels(browserPage, BAD_MARKERS);
    panels.forEach((panel) => {
        if (panel.found.length) problems.push(`panel ${panel.id}: ${panel.found.join(', ')} (${panel.texts.join(' / ')})`);
        else if (!panel.drawn) problems.push(`panel ${panel.id} (${panel.type}) drew nothing`);
    });
    const seen = new Set(panels.map((p) => p.id));
    expected.filter((id) => !seen.has(id)).forEach((id) => problems.push(`panel ${id} is not on the page`));
    problems.push(...(await browserPage.evaluate(() => window.__renderProblems || [])));
    const requests = await browserPage.evaluate(() => window.__renderRequests || []);
    const tokens = await browserPage.evaluate(() => window.__renderTokens || {});
    timings.done = Date.now();
    const phases = ['loaded', 'settled', 'validated', 'done'].map((k) => `${k} ${((timings[k] - timings.started) / 1000).toFixed(1)}`);
    if (process.env.RENDER_TIMINGS) console.log(`  ${scenario.url}: ${phases.join(', ')}`);
    return { browserPage, problems, panels, requests, tokens };
}

async function clickThingRow(browser, buildDir, resultsText, click) {
    const { browserPage, problems } = await renderView(browser, buildDir, resultsText, click.from);
    const target = `[data-test="viz-item"][data-id="${click.panel}"]`;
    const navigation = browserPage.waitForNavigation({ waitUntil: 'load', timeout: SETTLE_TIMEOUT_MS });
    const clicked = await browserPage.evaluate((selector, text) => {
        const panel = document.querySelector(selector);
        if (!panel) return 'no panel';
        const cells = [...panel.querySelectorAll('[data-test="cell"]')];
        const cell = cells.find((c) => (c.textContent || '').trim() === text);
        if (!cell) return `no cell with ${text} among ${cells.length}`;
        cell.scrollIntoView();
        cell.click();
        return 'clicked';
    }, target, click.thing);
    if (clicked !== 'clicked') {
        problems.push(`click: ${clicked}`);
        await browserPage.close();
        return { problems };
    }
    try {
        await navigation;
    } catch (error) {
        problems.push(`click on ${click.thing} did not navigate: ${error.message}`);
        await browserPage.close();
        return { problems };
    }
    const landed = new URL(browserPage.url());
    await browserPage.close();
    const view = landed.pathname.split('/').pop();
    const thing = landed.searchParams.get('form.thing');
    if (view !== click.to) problems.push(`click landed on ${landed.pathname}, not ${click.to}`);
    if (thing !== click.thing) problems.push(`click set form.thing=${thing}, not ${click.thing}`);
    // draw the page the click landed on, with the tokens it carries
    const url = `${landed.pathname}${landed.search}`;
    const after = await renderView(browser, buildDir, resultsText, { url, panels: click.panels });
    await after.browserPage.close();
    problems.push(...after.problems);
    if (after.tokens.thing !== click.thing) problems.push(`the Thing dashboard's thing token is ${after.tokens.thing}`);
    const answered = after.requests.filter((r) => r.answered && r.query && r.query.includes(JSON.stringify(click.thing)));
    if (!answered.length) problems.push(`no data source of ${click.to} searched for thing_name="${click.thing}"`);
    return { problems, landed: url, thing, searches_for_thing: answered.length };
}

// A smaller copy of a view's picture for the README and the docs (<name>.small.png): the top of the page, scaled
// down by Chromium itself (a canvas), so no image library is needed.
async function thumbnail(browserPage, png) {
    const data = fs.readFileSync(png).toString('base64');
    const small = await browserPage.evaluate(
        async (base64, width, maxHeight) => {
            const image = new Image();
            image.src = `data:image/png;base64,${base64}`;
            await image.decode();
            const scale = width / image.width;
            const height = Math.min(image.height, maxHeight);
            const canvas = document.createElement('canvas');
            canvas.width = width;
            canvas.height = Math.round(height * scale);
            const context = canvas.getContext('2d');
            context.imageSmoothingQuality = 'high';
            context.drawImage(image, 0, 0, image.width, height, 0, 0, canvas.width, canvas.height);
            return canvas.toDataURL('image/png').split(',')[1];
        },
        data,
        THUMBNAIL_WIDTH,
        THUMBNAIL_SOURCE_HEIGHT
    );
    fs.writeFileSync(png.replace(/\.png$/, '.small.png'), Buffer.from(small, 'base64'));
}

async function pool(jobs, size) {
    const results = new Array(jobs.length);
    let next = 0;
    const worker = async () => {
        while (next < jobs.length) {
            const index = next++;
            results[index] = await jobs[index]();
        }
    };
    await Promise.all(Array.from({ length: Math.min(size, jobs.length) }, worker));
    return results;
}

async function main(argv) {
    const [buildDir, chromium] = argv.slice(2);
    if (!buildDir || !chromium) {
        console.error('usage: node render.js <build dir> <chromium executable>');
        return 2;
    }
    const started = Date.now();
    const resultsText = fs.readFileSync(path.join(buildDir, 'results.json'), 'utf8');
    const plan = JSON.parse(resultsText);
    const browser = await puppeteer.launch({
        executablePath: chromium,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--font-render-hinting=none'],
    });
    const report = { views: {}, canaries: {}, click: null };
    const lines = [];
    let failed = false;
    const viewJob = (scenario) => async () => {
        const { browserPage, problems, panels, requests } = await renderView(browser, buildDir, resultsText, scenario);
        const png = path.join(buildDir, `${scenario.name}.png`);
        await browserPage.screenshot({ path: png });
        if ((plan.screenshots || []).includes(scenario.name)) await thumbnail(browserPage, png);
        problems.push(...(await checkDropdowns(browserPage, scenario)));
        await browserPage.close();
        report.views[scenario.name] = { problems, panels: panels.length, requests: requests.length, png: path.basename(png) };
        failed = failed || problems.length > 0;
        const state = problems.length ? 'FAILED' : 'ok';
        return [`${scenario.name}: ${panels.length} panels, ${requests.length} data sources: ${state}`, ...problems.map((p) => `  - ${p}`)];
    };
    // canaries: copies of a view with one deliberate defect each; each must be caught, or the check proves nothing
    const canaryJob = (canary) => async () => {
        const { browserPage, problems } = await renderView(browser, buildDir, resultsText, canary);
        problems.push(...(await checkDropdowns(browserPage, canary)));
        await browserPage.close();
        const caught = problems.filter((p) => p.includes(canary.expect));
        report.canaries[canary.name] = { defect: canary.defect, problems };
        if (!caught.length) failed = true;
        const state = caught.length ? `caught: ${caught[0]}` : 'NOT CAUGHT';
        return [`canary ${canary.name} (${canary.defect}): ${state}`, ...(caught.length ? [] : problems.map((p) => `  - ${p}`))];
    };
    const clickJob = (click) => async () => {
        report.click = await clickThingRow(browser, buildDir, resultsText, click);
        failed = failed || report.click.problems.length > 0;
        const state = report.click.problems.length ? 'FAILED' : 'ok';
        return [
            `click on ${click.thing} in ${click.from.name}/${click.panel}: ${state} -> ${report.click.landed || '-'}`,
            ...report.click.problems.map((p) => `  - ${p}`),
        ];
    };
    try {
        const jobs = [
            ...plan.scenarios.map(viewJob),
            ...(plan.canaries || []).map(canaryJob),
            ...(plan.click ? [clickJob(plan.click)] : []),
        ];
        (await pool(jobs, PARALLEL)).forEach((out) => lines.push(...out));
    } finally {
        await browser.close();
    }
    lines.forEach((line) => console.log(line));
    report.seconds = (Date.now() - started) / 1000;
    console.log(`dashboards-check: ${Object.keys(report.views).length} views drawn in ${report.seconds.toFixed(0)} s: ${failed ? 'FAILED' : 'ok'}`);
    fs.writeFileSync(path.join(buildDir, 'report.json'), JSON.stringify(report, null, 1));
    return failed ? 1 : 0;
}

main(process.argv).then(
    (code) => {
        process.exitCode = code;
    },
    (error) => {
        console.error(error);
        process.exitCode = 1;
    }
);
