// My Jobs / All Jobs: filtered, sorted, cursor-paged list with live progress from /api/v1/events,
// selection and bulk cancel/retry, and the detail panel of one job.

import {$, el, clear, toast, progressBar, setProgress, timeCell, debounce, activatableRow, emptyRow} from './dom.js';
import {get, post, del, url, listAll} from './api.js';
import {ACTIVE, RETRYABLE, TERMINAL, progressLine, eventData} from './job-state.js';
import * as detail from './job-detail.js';

const PAGE_SIZE = 50;

let all = false;            // All Jobs (every owner) instead of My Jobs
let loaded = false;         // the list matches `all` and the filters
let seq = 0;                // answers of older list requests are dropped
let nextCursor = null;
let lastTotal = 0;          // `total` of the last list answer: every job matching the filter
let pagesLoaded = 0;
const rows = new Map();     // job_id -> {job (summary + live fields), tr, stateCell, bar, text}
const selected = new Set(); // job ids, kept across reloads
let events = null;          // EventSource on /api/v1/events
let eventsRetry = 0;
let pendingConfirm = null;  // the action the confirm bar waits for

// --- page interface

export function init() {
    // A new filter starts a new selection: "selected" never means jobs that are not on screen.
    const reload = () => { selected.clear(); load(false); };
    $('#jobs-state').addEventListener('change', reload);
    $('#jobs-sort').addEventListener('change', reload);
    $('#jobs-search').addEventListener('input', debounce(reload, 300));
    $('#jobs-next').addEventListener('click', () => load(true));
    $('#jobs-select-all').addEventListener('click', toggleSelectPage);
    $('#jobs-cancel-selected').addEventListener('click', () => bulk('cancel', [...selected]));
    $('#jobs-retry-selected').addEventListener('click', () => bulk('retry', [...selected]));
    $('#jobs-cancel-filtered').addEventListener('click', () => confirmFiltered('cancel'));
    $('#jobs-retry-filtered').addEventListener('click', () => confirmFiltered('retry'));
    $('#jobs-confirm-yes').addEventListener('click', () => { const f = pendingConfirm; closeConfirm(); if (f) f(); });
    $('#jobs-confirm-no').addEventListener('click', closeConfirm);
    // The detail tells the list what it learned of a job, so the row never lags behind it.
    detail.init({close: () => { location.hash = listHash(); }, onJob: updateRowFrom});
}

export function show(params) {
    const wantAll = params.name === 'all-jobs';
    if (wantAll !== all || !loaded) {
        all = wantAll;
        $('#jobs-title').textContent = all ? 'All Jobs' : 'My Jobs';
        $('#jobs-table').classList.toggle('show-owner', all);
        selected.clear();
        load(false);
        openEvents();
    } else if (!events) {
        openEvents();
    }
    if (params.id) {
        markCurrent(params.id);
        detail.open(params.id);
    } else {
        closeDetail();
    }
}

export function hide() {
    closeEvents();
    closeDetail();
    loaded = false;  // coming back reloads: the stream missed what happened meanwhile
}

export function reset() {
    hide();
    rows.clear();
    selected.clear();
    clear($('#jobs-table tbody'));
    $('#jobs-total').textContent = '';
    $('#jobs-search').value = '';
}

const listHash = () => (all ? '#/all-jobs' : '#/jobs');

function markCurrent(id) {
    for (const r of rows.values()) r.tr.classList.toggle('current', r.job.job_id === id);
}

function closeDetail() {
    const row = rows.get(detail.currentId());
    const hadFocus = detail.close();
    markCurrent(null);
    if (hadFocus && row) row.tr.focus();  // keyboard users land back on the row they opened
}

// A fresher view of a job (its detail, or a status poll) repaints its row.
function updateRowFrom(job) {
    const row = rows.get(job.job_id);
    if (!row) return;
    const {state, progress_percent, fps, speed, eta_seconds, finished_at, queue_position} = job;
    Object.assign(row.job, {state, progress_percent, fps, speed, eta_seconds, finished_at, queue_position});
    paintRow(row);
}

// --- the list

function filters() {
    return {state: $('#jobs-state').value, q: $('#jobs-search').value.trim(), sort: $('#jobs-sort').value,
            all: all ? 'true' : ''};
}

async function load(append) {
    const mine = ++seq;
    const query = {...filters(), limit: PAGE_SIZE, cursor: append ? nextCursor : ''};
    $('#jobs-next').disabled = true;
    try {
        const page = await get('/jobs', query);
        if (mine !== seq) return;
        const body = $('#jobs-table tbody');
        if (!append) { clear(body); rows.clear(); pagesLoaded = 0; }
        pagesLoaded++;
        loaded = true;
        for (const job of page.items || []) {
            if (rows.has(job.job_id)) continue;  // a job that moved between pages
            body.append(makeRow(job));
        }
        if (!rows.size) body.append(emptyRow(7, 'No jobs match.'));
        nextCursor = page.next_cursor || null;
        lastTotal = page.total ?? rows.size;
        $('#jobs-next').hidden = !nextCursor;
        // Plain integers (no grouping): "1234 jobs (50 shown)" reads back with parseInt.
        $('#jobs-total').textContent = `${lastTotal} job${lastTotal === 1 ? '' : 's'}` +
            (rows.size < lastTotal ? ` (${rows.size} shown)` : '');
        updateBulk();
    } catch (err) {
        if (mine === seq && err.status !== 401) toast(err.message);
    } finally {
        $('#jobs-next').disabled = false;
    }
}

function makeRow(job) {
    const check = el('input', {type: 'checkbox', class: 'job-select', 'aria-label': `Select ${job.output_filename || job.job_id}`});
    check.checked = selected.has(job.job_id);
    check.addEventListener('change', () => {
        if (check.checked) selected.add(job.job_id); else selected.delete(job.job_id);
        updateBulk();
    });
    const stateCell = el('td', {class: 'job-state'});
    const bar = progressBar('job-progress', `Progress of ${job.output_filename || job.job_id}`);
    const text = el('span', {class: 'progress-text muted'});
    const finished = el('td', {class: 'job-finished'});
    const tr = el('tr', {dataset: {jobId: job.job_id, state: job.state}, class: job.job_id === detail.currentId() ? 'current' : null},
        el('td', {}, check),
        el('td', {class: 'job-name', text: job.output_filename || job.job_id}),
        stateCell,
        el('td', {class: 'job-progress-cell'}, bar, text),
        el('td', {class: 'col-owner', text: job.owner || ''}),
        el('td', {}, timeCell(job.created_at)),
        finished);
    activatableRow(tr, () => { location.hash = `${listHash()}/${encodeURIComponent(job.job_id)}`; });
    const row = {job: {...job}, tr, stateCell, bar, text, finished, check};
    rows.set(job.job_id, row);
    paintRow(row);
    return tr;
}

function paintRow(row) {
    const j = row.job;
    row.tr.dataset.state = j.state;
    row.stateCell.textContent = j.state;
    row.stateCell.dataset.state = j.state;
    const pct = j.state === 'completed' ? 100 : j.progress_percent || 0;
    const line = progressLine(j, pct);
    setProgress(row.bar, pct, line);
    row.text.textContent = line;
    clear(row.finished).append(j.finished_at ? timeCell(j.finished_at) : '');
}

// --- live updates

function openEvents() {
    closeEvents();
    const es = new EventSource(url('/events', {all: all ? 'true' : ''}));
    events = es;
    es.addEventListener('open', () => { eventsRetry = 0; stopPolling(); });
    es.addEventListener('state', (ev) => { const d = eventData(ev); if (d) onState(d); });
    es.addEventListener('progress', (ev) => { const d = eventData(ev); if (d) onProgress(d); });
    es.addEventListener('error', () => {
        // CONNECTING: the browser reconnects by itself (with Last-Event-ID). CLOSED: the server
        // refused (401/403/429...): check the session (a 401 sends us to sign-in), then retry later.
        if (es.readyState !== EventSource.CLOSED || events !== es) return;
        events = null;
        startPolling();  // rows stay live (more slowly) until the stream is back
        get('/sessions/current').then(() => {
            const wait = Math.min(30000, 2000 * 2 ** eventsRetry++);
            setTimeout(() => { if (loaded && !events && !$('#page-jobs').hidden) openEvents(); }, wait);
        }, () => {});
    });
}

function closeEvents() {
    if (events) events.close();
    events = null;
    stopPolling();
}

// The fallback while /api/v1/events is unavailable: poll the status of the unfinished rows on screen.
let pollTimer = 0;
const POLL_MS = 3000;
const POLL_MAX = 25;
function startPolling() { if (!pollTimer) pollTimer = setInterval(pollActive, POLL_MS); }
function stopPolling() { clearInterval(pollTimer); pollTimer = 0; }

async function pollActive() {
    const active = [...rows.values()].filter((r) => !TERMINAL.has(r.job.state)).slice(0, POLL_MAX);
    await Promise.all(active.map(async (row) => {
        try {
            updateRowFrom(await get(`/jobs/${encodeURIComponent(row.job.job_id)}/status`));
        } catch { /* the next poll tries again; a 401 has already led to sign-in */ }
    }));
    detail.refreshIfActive();
}

// A job not on screen may belong on the first page: reload it (only when nothing was paged in).
const reloadFirstPage = debounce(() => { if (pagesLoaded <= 1 && loaded) load(false); }, 1500);

function onState(d) {
    const row = rows.get(d.job_id);
    if (!row) {
        const f = filters();
        if (!f.state || f.state === d.state) reloadFirstPage();
    } else {
        Object.assign(row.job, {state: d.state, progress_percent: d.progress_percent, message: d.message});
        if (d.state !== 'running') Object.assign(row.job, {fps: null, speed: null, eta_seconds: null});
        if (TERMINAL.has(d.state)) row.job.finished_at = d.at;
        paintRow(row);
        updateBulk();
    }
}

function onProgress(d) {
    const row = rows.get(d.job_id);
    if (!row) return;
    Object.assign(row.job, {progress_percent: d.progress_percent, fps: d.fps, speed: d.speed,
                            eta_seconds: d.eta_seconds});
    if (row.job.state === 'assigned' || row.job.state === 'queued') row.job.state = 'running';
    paintRow(row);
}

// --- selection and bulk actions

function toggleSelectPage() {
    const ids = [...rows.keys()];
    const every = ids.length && ids.every((id) => selected.has(id));
    for (const [id, row] of rows) {
        row.check.checked = !every;
        if (every) selected.delete(id); else selected.add(id);
    }
    updateBulk();
}

function updateBulk() {
    const n = selected.size;
    $('#jobs-cancel-selected').disabled = n === 0;
    $('#jobs-retry-selected').disabled = n === 0;
    $('#jobs-selected-count').textContent = n ? `${n} selected` : '';
    const ids = [...rows.keys()];
    $('#jobs-select-all').textContent = ids.length && ids.every((id) => selected.has(id)) ? 'Clear selection' : 'Select all shown';
}

function confirmFiltered(action) {
    $('#jobs-confirm-text').textContent = `${action === 'cancel' ? 'Cancel' : 'Retry'} every job matching the ` +
        `current filter (${lastTotal} job${lastTotal === 1 ? '' : 's'})?`;
    $('#jobs-confirm').hidden = false;
    $('#jobs-confirm-no').focus();
    pendingConfirm = async () => {
        const status = $('#jobs-selected-count');
        try {
            const q = {...filters()};
            const items = await listAll('/jobs', q, (n) => { status.textContent = `Collecting… ${n}`; });
            await bulk(action, items.map((j) => j.job_id), new Map(items.map((j) => [j.job_id, j.state])));
        } catch (err) {
            if (err.status !== 401) toast(err.message);
        }
    };
}

function closeConfirm() {
    $('#jobs-confirm').hidden = true;
    pendingConfirm = null;
}

// Cancel or retry the given jobs, four requests at a time. Jobs whose known state does not allow
// the action are skipped rather than sent to be refused.
let bulkRunning = false;
async function bulk(action, ids, states = new Map()) {
    if (bulkRunning) return;  // one bulk action at a time: a double click must not send everything twice
    bulkRunning = true;
    try {
        await runBulk(action, ids, states);
    } finally {
        bulkRunning = false;
    }
}

async function runBulk(action, ids, states) {
    const allowed = action === 'cancel' ? ACTIVE : RETRYABLE;
    const stateOf = (id) => rows.get(id)?.job.state ?? states.get(id);
    const todo = ids.filter((id) => { const s = stateOf(id); return s === undefined || allowed.has(s); });
    const skipped = ids.length - todo.length;
    const status = $('#jobs-selected-count');
    let done = 0;
    const errors = [];
    const worker = async () => {
        while (todo.length) {
            const id = todo.shift();
            try {
                if (action === 'cancel') await del(`/jobs/${encodeURIComponent(id)}`);
                else await post(`/jobs/${encodeURIComponent(id)}/retry`);
                done++;
                selected.delete(id);
            } catch (err) {
                if (err.status === 401) return;
                errors.push(err);
            }
            status.textContent = `${action === 'cancel' ? 'Canceling' : 'Retrying'}… ${done + errors.length}`;
        }
    };
    await Promise.all([1, 2, 3, 4].map(worker));
    const verb = action === 'cancel' ? 'Canceled' : 'Retried';
    let msg = `${verb} ${done} job${done === 1 ? '' : 's'}`;
    if (skipped) msg += `, skipped ${skipped} (not ${action === 'cancel' ? 'active' : 'failed or canceled'})`;
    if (errors.length) toast(`${msg}; ${errors.length} refused: ${errors[0].message}`);
    else toast(msg, 'info');
    await load(false);
}
