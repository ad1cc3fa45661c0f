// Engines: the list with their health, and the detail of one: facts, the jobs it runs and ran,
// and (admins) drain / undrain / re-run benchmark.

import {$, el, clear, toast, fmtBytes, fmtNum, fmtTime, timeCell, activatableRow, emptyRow,
        progressBar, setProgress} from './dom.js';
import {get, post} from './api.js';

const REFRESH_MS = 10000;
let timer = 0;
let admin = false;
let engines = new Map();   // engine_id -> EngineInfo
let detailId = null;

export function init() {
    $('#engine-detail-close').addEventListener('click', () => { location.hash = '#/engines'; });
    $('#engine-detail').addEventListener('keydown', (e) => { if (e.key === 'Escape') location.hash = '#/engines'; });
    $('#engine-drain').addEventListener('click', () => action('drain'));
    $('#engine-undrain').addEventListener('click', () => action('undrain'));
    $('#engine-benchmark').addEventListener('click', () => action('benchmark'));
}

export function show(params, session) {
    admin = session.role === 'admin';
    const fresh = params.id && params.id !== detailId;
    detailId = params.id || null;
    if (!detailId) $('#engine-detail').hidden = true;
    refresh().then(() => { if (fresh && detailId) $('#engine-detail-title').focus(); });
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
}

export function hide() { clearInterval(timer); timer = 0; }

export function reset() {
    hide();
    engines = new Map();
    detailId = null;
    clear($('#engines-table tbody'));
    $('#engine-detail').hidden = true;
}

async function refresh() {
    try {
        const list = await get('/engines');
        engines = new Map((list.items || []).map((e) => [e.engine_id, e]));
        renderTable();
        if (detailId) await renderDetail();
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
}

function renderTable() {
    // Rows are rebuilt on every refresh: keep the keyboard focus on the row that had it.
    const focused = document.activeElement?.closest?.('#engines-table tr')?.dataset.engineId;
    const body = clear($('#engines-table tbody'));
    for (const e of engines.values()) {
        const busy = (e.running_assignments || []).length;
        const tr = el('tr', {dataset: {engineId: e.engine_id, state: e.state}, class: e.engine_id === detailId ? 'current' : null},
            el('td', {class: 'engine-name', text: e.hostname}),
            el('td', {class: 'engine-state', dataset: {state: e.state}, text: e.state}),
            el('td', {text: e.version}),
            el('td', {}, slotsCell(busy, e.slots)),
            el('td', {text: fmtNum(e.load_average, 2)}),
            el('td', {text: e.cpu_temperature_c === null || e.cpu_temperature_c === undefined ? '–' : `${fmtNum(e.cpu_temperature_c, 0)} °C`}),
            el('td', {text: fmtBytes(e.free_disk_bytes)}),
            el('td', {text: fmtNum(e.benchmark_score, 1)}),
            el('td', {class: 'caps', text: capsSummary(e)}),
            el('td', {}, timeCell(e.last_seen_at)));
        // The note is CSS content: td.engine-state keeps the bare state as its text.
        if (e.drain_requested && e.state !== 'draining') {
            tr.children[1].classList.add('drain-asked');
            tr.children[1].title = 'drain requested';
        }
        activatableRow(tr, () => { location.hash = `#/engines/${encodeURIComponent(e.engine_id)}`; });
        body.append(tr);
        if (e.engine_id === focused) tr.focus();
    }
    if (!engines.size) body.append(emptyRow(10, 'No engine has registered yet.'));
}

function slotsCell(busy, slots) {
    const bar = progressBar('slots', 'Slots in use');
    setProgress(bar, slots ? (busy / slots) * 100 : 0, `${busy} of ${slots} slots in use`);
    return el('span', {class: 'slots-cell'}, `${busy} / ${slots} `, bar);
}

function capsSummary(e) {
    const c = e.capabilities || {};
    const parts = [];
    if (c.ffmpeg_version) parts.push(`ffmpeg ${String(c.ffmpeg_version).split('-')[0]}`);
    if (c.encoders) parts.push(`${c.encoders.length} encoders`);
    if (c.hwaccels && c.hwaccels.length) parts.push(`hw: ${c.hwaccels.join(', ')}`);
    if (e.tags && e.tags.length) parts.push(`tags: ${e.tags.join(', ')}`);
    return parts.join(' · ');
}

async function renderDetail() {
    const id = detailId;
    const e = engines.get(id);
    const panel = $('#engine-detail');
    panel.hidden = false;
    panel.dataset.engineId = id;
    if (!e) {
        $('#engine-detail-title').textContent = 'Engine not found';
        clear($('#engine-facts'));
        clear($('#engine-jobs tbody'));
        return;
    }
    $('#engine-detail-title').textContent = e.hostname;
    $('#engine-drain').disabled = e.drain_requested;
    $('#engine-undrain').disabled = !e.drain_requested;
    const c = e.capabilities || {};
    const dl = clear($('#engine-facts'));
    const mem = e.memory ? `${fmtBytes(e.memory.available_bytes)} free of ${fmtBytes(e.memory.total_bytes)}` : null;
    for (const [k, v] of [
        ['Engine id', e.engine_id], ['State', e.state + (e.drain_requested ? ' (drain requested)' : '')],
        ['Version', e.version], ['Slots', `${(e.running_assignments || []).length} of ${e.slots} in use`],
        ['Memory', mem], ['ffmpeg', c.ffmpeg_version], ['Encoders', (c.encoders || []).join(', ')],
        ['Decoders', c.decoders ? `${c.decoders.length}` : null], ['Hardware', (c.hwaccels || []).join(', ') || 'none'],
        ['Tags', (e.tags || []).join(', ')], ['Registered', fmtTime(e.registered_at)], ['Last seen', fmtTime(e.last_seen_at)],
    ]) {
        if (v === null || v === undefined || v === '') continue;
        dl.append(el('dt', {text: k}), el('dd', {text: v}));
    }
    const body = $('#engine-jobs tbody');
    if (!admin) {
        clear(body).append(emptyRow(5, 'Only admins can list the jobs of an engine.'));
        return;
    }
    try {
        const page = await get('/jobs', {engine: id, all: 'true', limit: 50});
        if (detailId !== id) return;
        clear(body);
        for (const j of page.items || []) {
            const bar = progressBar('engine-job-progress', `Progress of ${j.output_filename || j.job_id}`);
            setProgress(bar, j.state === 'completed' ? 100 : j.progress_percent);
            body.append(el('tr', {dataset: {jobId: j.job_id, state: j.state}},
                el('td', {}, el('a', {href: `#/all-jobs/${encodeURIComponent(j.job_id)}`, text: j.output_filename || j.job_id})),
                el('td', {class: 'job-state', dataset: {state: j.state}, text: j.state}),
                el('td', {}, bar),
                el('td', {text: j.owner || ''}),
                el('td', {}, timeCell(j.started_at || j.created_at))));
        }
        if (!body.children.length) body.append(emptyRow(5, 'This engine has not run a job yet.'));
    } catch (err) {
        if (err.status !== 401 && detailId === id) {
            clear(body).append(emptyRow(5, err.message));
        }
    }
}

async function action(kind) {
    const id = detailId;
    if (!id) return;
    try {
        const e = await post(`/engines/${encodeURIComponent(id)}/${kind}`);
        if (e && e.engine_id) engines.set(e.engine_id, e);
        toast({drain: 'Draining: the engine takes no new work.', undrain: 'The engine takes work again.',
               benchmark: 'The engine re-runs its benchmark at its next heartbeat.'}[kind], 'info');
        renderTable();
        await renderDetail();
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
}
