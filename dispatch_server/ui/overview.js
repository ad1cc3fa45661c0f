// Overview: job and engine counts, throughput over the last hour (SVG bars), problem list.

import {$, el, svg, clear, toast, fmtNum, fmtAgo, timeCell} from './dom.js';
import {get} from './api.js';

const REFRESH_MS = 10000;
let timer = 0;
let admin = false;

export function init() {}

export function show(_params, session) {
    admin = session.role === 'admin';
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
}

export function hide() { clearInterval(timer); timer = 0; }

export function reset() {
    hide();
    for (const id of ['#ov-queued', '#ov-running', '#ov-engines-online', '#ov-finished']) $(id).textContent = '–';
    clear($('#ov-throughput'));
    clear($('#ov-problems'));
}

async function refresh() {
    try {
        render(await get('/overview'));
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
}

// Counts are plain integers ("12345", no grouping): easy to read back for scripts and tests.
const count = (n) => String(n ?? 0);

function render(ov) {
    const j = ov.jobs || {};
    const e = ov.engines || {};
    $('#ov-queued').textContent = count(j.queued);
    $('#ov-queued-sub').textContent = `${fmtNum(j.awaiting_upload ?? 0)} awaiting upload`;
    $('#ov-running').textContent = count(j.running);
    $('#ov-running-sub').textContent = `${fmtNum(j.assigned ?? 0)} starting, ${fmtNum(j.canceling ?? 0)} canceling`;
    $('#ov-engines-online').textContent = count(e.online);
    $('#ov-engines-sub').textContent = `${fmtNum(e.draining ?? 0)} draining, ${fmtNum(e.offline ?? 0)} offline`;
    $('#ov-finished').textContent = count(j.completed);
    $('#ov-finished-sub').textContent = `${fmtNum(j.failed ?? 0)} failed, ${fmtNum(j.canceled ?? 0)} canceled`;
    drawThroughput(ov.throughput || []);
    renderProblems(ov.failed_last_hour || [], ov.offline_engines || []);
}

// Stacked bars, one per 5-minute bucket: completed (bottom) and failed (top).
function drawThroughput(buckets) {
    const chart = clear($('#ov-throughput'));
    const W = 360, H = 130, left = 28, bottom = 18, top = 6;
    const plotH = H - bottom - top;
    const max = Math.max(1, ...buckets.map((b) => (b.completed || 0) + (b.failed || 0)));
    const step = (W - left) / Math.max(1, buckets.length);
    const barW = Math.max(2, step * 0.7);
    const y = (v) => top + plotH - (v / max) * plotH;

    // Axis and two gridlines with their values.
    for (const v of [0, Math.ceil(max / 2), max]) {
        chart.append(svg('line', {x1: left, x2: W, y1: y(v), y2: y(v), class: 'grid'}),
                     svg('text', {x: left - 4, y: y(v) + 3, class: 'axis', 'text-anchor': 'end', text: v}));
    }
    let completed = 0, failed = 0;
    buckets.forEach((b, i) => {
        const c = b.completed || 0, f = b.failed || 0;
        completed += c; failed += f;
        const x = left + i * step + (step - barW) / 2;
        const g = svg('g', {}, svg('title', {text: `${timeLabel(b.at)}: ${c} completed, ${f} failed`}));
        if (c) g.append(svg('rect', {x, width: barW, y: y(c), height: y(0) - y(c), class: 'bar-ok'}));
        if (f) g.append(svg('rect', {x, width: barW, y: y(c + f), height: y(c) - y(c + f), class: 'bar-bad'}));
        // A transparent hit area so the tooltip also works on empty buckets.
        g.append(svg('rect', {x, width: barW, y: top, height: plotH, class: 'hit'}));
        chart.append(g);
        if (i % 3 === 0) {
            chart.append(svg('text', {x: x + barW / 2, y: H - 4, class: 'axis', 'text-anchor': 'middle',
                                      text: timeLabel(b.at)}));
        }
    });
    $('#ov-throughput-text').textContent = buckets.length
        ? `${completed} completed and ${failed} failed in the last hour (5-minute buckets).`
        : 'No throughput data.';
}

function timeLabel(ts) {
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit'});
}

function renderProblems(failedJobs, offlineEngines) {
    const list = clear($('#ov-problems'));
    const jobsRoute = admin ? '#/all-jobs/' : '#/jobs/';
    for (const j of failedJobs) {
        list.append(el('li', {class: 'problem-job', dataset: {jobId: j.job_id}},
            el('span', {class: 'state', dataset: {state: j.state}, text: j.state}), ' ',
            el('a', {href: jobsRoute + encodeURIComponent(j.job_id), text: j.output_filename || j.job_id}),
            ' ', el('span', {class: 'muted', text: [j.message, fmtAgo(j.finished_at || j.created_at)]
                .filter(Boolean).join(' · ')})));
    }
    for (const e of offlineEngines) {
        list.append(el('li', {class: 'problem-engine', dataset: {engineId: e.engine_id}},
            el('span', {class: 'state', dataset: {state: 'offline'}, text: 'offline'}), ' ',
            el('a', {href: `#/engines/${encodeURIComponent(e.engine_id)}`, text: e.hostname || e.engine_id}),
            ' ', el('span', {class: 'muted', text: 'last seen '}), timeCell(e.last_seen_at)));
    }
    if (!list.children.length) list.append(el('li', {class: 'empty', text: 'No failed jobs in the last hour and no offline engines.'}));
}
