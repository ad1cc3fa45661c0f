// My Jobs / All Jobs: filtered, sorted, cursor-paged list with live progress from /api/v1/events,
// selection and bulk cancel/retry, and the detail panel of one job.

import {$, el, clear, toast, progressBar, setProgress, fmtBytes, fmtDuration, fmtNum, fmtTime,
        timeCell, debounce, activatableRow, emptyRow} from './dom.js';
import {get, post, del, url, listAll, ApiError} from './api.js';

const PAGE_SIZE = 50;
const ACTIVE = new Set(['awaiting_upload', 'queued', 'assigned', 'running']);  // cancelable
const RETRYABLE = new Set(['failed', 'canceled']);
const TERMINAL = new Set(['completed', 'failed', 'canceled']);

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
    $('#job-detail-close').addEventListener('click', () => { location.hash = listHash(); });
    $('#job-detail').addEventListener('keydown', (e) => { if (e.key === 'Escape') location.hash = listHash(); });
    $('#job-cancel').addEventListener('click', () => detailAction('cancel'));
    $('#job-retry').addEventListener('click', () => detailAction('retry'));
    detailBar = progressBar('detail-progress', 'Job progress');
    $('#job-detail-progress-slot').append(detailBar);
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
    if (params.id) openDetail(params.id);
    else closeDetail();
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
    const tr = el('tr', {dataset: {jobId: job.job_id, state: job.state}, class: job.job_id === detailId ? 'current' : null},
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

// "47% · 58 fps · 1.94× · ETA 21s" (the live parts only while running)
function progressLine(j, pct) {
    const parts = [`${pct}%`];
    if (j.state === 'running') {
        if (j.fps) parts.push(`${fmtNum(j.fps, 1)} fps`);
        if (j.speed) parts.push(`${fmtNum(j.speed, 2)}×`);
        if (j.eta_seconds !== null && j.eta_seconds !== undefined) parts.push(`ETA ${fmtDuration(j.eta_seconds)}`);
    } else if (j.state === 'queued' && j.queue_position) {
        parts.push(`#${j.queue_position} in queue`);
    }
    return parts.join(' · ');
}

// --- live updates

function openEvents() {
    closeEvents();
    const es = new EventSource(url('/events', {all: all ? 'true' : ''}));
    events = es;
    es.addEventListener('open', () => { eventsRetry = 0; stopPolling(); });
    es.addEventListener('state', (ev) => onEvent(ev, onState));
    es.addEventListener('progress', (ev) => onEvent(ev, onProgress));
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
            const s = await get(`/jobs/${encodeURIComponent(row.job.job_id)}/status`);
            const {state, progress_percent, fps, speed, eta_seconds, finished_at, queue_position} = s;
            Object.assign(row.job, {state, progress_percent, fps, speed, eta_seconds, finished_at, queue_position});
            paintRow(row);
        } catch { /* the next poll tries again; a 401 has already led to sign-in */ }
    }));
    if (detailJob && !TERMINAL.has(detailJob.state)) refreshDetailSoon();
}

function onEvent(ev, handler) {
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    if (data && data.job_id) handler(data);
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

// --- the detail panel

let detailBar = null;
let detailId = null;
let detailJob = null;
let detailEvents = null;
let engineNames = {at: 0, map: new Map()};

async function openDetail(id) {
    const panel = $('#job-detail');
    const fresh = detailId !== id;
    detailId = id;
    panel.dataset.jobId = id;
    for (const r of rows.values()) r.tr.classList.toggle('current', r.job.job_id === id);
    if (fresh) {
        detailJob = null;
        clear($('#job-events'));
        $('#job-detail-title').textContent = 'Loading…';
        panel.hidden = false;
        openDetailEvents(id);
    }
    await refreshDetail();
    if (fresh && detailId === id) $('#job-detail-title').focus();
}

function closeDetail() {
    const prev = rows.get(detailId);
    const hadFocus = $('#job-detail').contains(document.activeElement);
    detailId = null;
    detailJob = null;
    if (detailEvents) detailEvents.close();
    detailEvents = null;
    $('#job-detail').hidden = true;
    for (const r of rows.values()) r.tr.classList.remove('current');
    if (hadFocus && prev) prev.tr.focus();  // keyboard users land back on the row they opened
}

async function refreshDetail() {
    const id = detailId;
    if (!id) return;
    try {
        const [job] = await Promise.all([get(`/jobs/${encodeURIComponent(id)}`), loadEngineNames()]);
        if (detailId === id) renderDetail(job);
    } catch (err) {
        if (detailId !== id || err.status === 401) return;
        toast(err.message);
        $('#job-detail-title').textContent = err.status === 404 ? 'Job not found' : 'Could not load the job';
    }
}
const refreshDetailSoon = debounce(refreshDetail, 300);

// Engine ids -> host names for the attempts table (the list is small; refreshed at most every 30 s).
async function loadEngineNames() {
    if (Date.now() - engineNames.at < 30000) return;
    try {
        const list = await get('/engines');
        engineNames = {at: Date.now(), map: new Map((list.items || []).map((e) => [e.engine_id, e.hostname]))};
    } catch { /* names are a nicety: ids are shown instead */ }
}

function renderDetail(job) {
    detailJob = job;
    $('#job-detail').dataset.state = job.state;
    const row = rows.get(job.job_id);  // the list row follows what the detail learned
    if (row) {
        const {state, progress_percent, fps, speed, eta_seconds, finished_at, queue_position} = job;
        Object.assign(row.job, {state, progress_percent, fps, speed, eta_seconds, finished_at, queue_position});
        paintRow(row);
    }
    const name = job.output?.filename || job.resolved_options?.output_filename || job.job_id;
    $('#job-detail-title').textContent = name;
    const stateEl = $('#job-detail-state');
    stateEl.textContent = job.state;
    stateEl.dataset.state = job.state;
    paintDetailProgress(job);
    $('#job-cancel').disabled = !ACTIVE.has(job.state);
    $('#job-retry').disabled = !RETRYABLE.has(job.state);
    const dl = $('#job-download');
    dl.hidden = job.state !== 'completed';
    dl.href = `/api/v1/jobs/${encodeURIComponent(job.job_id)}/result`;
    dl.setAttribute('download', job.output?.filename || '');

    const src = job.source || {};
    const out = job.output || {};
    facts($('#job-facts'), [
        ['Job id', job.job_id],
        ['Owner', job.owner],
        ['Source', src.filename ? `${src.filename} (${fmtBytes(src.size)})` : fmtBytes(src.size)],
        ['Duration', src.probe?.duration_seconds ? fmtDuration(src.probe.duration_seconds) : null],
        ['Output', out.size ? `${fmtBytes(out.size)}${out.expires_at ? `, kept until ${fmtTime(out.expires_at)}` : ''}` : null],
        ['Priority', job.priority],
        ['Attempts', `${(job.attempts || []).length} of at most ${job.max_attempts}`],
        ['Queue position', job.queue_position],
        ['Message', job.message],
        ['Failure', job.failure_code],
        ['Reason', job.failure_reason, 'pre'],
        ['Created', fmtTime(job.created_at)],
        ['Started', job.started_at ? fmtTime(job.started_at) : null],
        ['Finished', job.finished_at ? fmtTime(job.finished_at) : null],
        ['Took', job.started_at && job.finished_at ? fmtDuration((Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000) : null],
    ]);
    $('#job-command').textContent = job.ffmpeg_command || '(planned once the source is stored and probed)';

    const opts = flatten(job.resolved_options || job.options || {});
    facts($('#job-options'), opts.length ? opts : [['Options', '(preset defaults)']]);

    const streams = clear($('#job-streams tbody'));
    for (const s of job.streams || []) {
        streams.append(el('tr', {dataset: {action: s.action}},
            el('td', {text: s.index}), el('td', {text: s.type}), el('td', {text: s.codec}),
            el('td', {text: s.language || ''}),
            el('td', {class: `plan-${s.action}`, text: s.action + (s.channels ? ` (${s.channels} ch)` : '')}),
            el('td', {text: s.encoder || ''}), el('td', {text: s.reason || ''})));
    }
    if (!streams.children.length) streams.append(emptyRow(7, job.streams ? 'No streams.' : 'Planned once the source is probed.'));

    const attempts = clear($('#job-attempts tbody'));
    for (const a of job.attempts || []) {
        const host = engineNames.map.get(a.engine_id);
        const took = a.finished_at ? (Date.parse(a.finished_at) - Date.parse(a.started_at)) / 1000 : null;
        attempts.append(el('tr', {},
            el('td', {text: a.attempt}),
            el('td', {}, el('a', {href: `#/engines/${encodeURIComponent(a.engine_id)}`, text: host || a.engine_id,
                                  title: a.engine_id})),
            el('td', {text: a.transfer_mode || ''}),
            el('td', {}, timeCell(a.started_at)),
            el('td', {text: took === null ? 'running' : fmtDuration(took)}),
            el('td', {text: a.exit_code ?? ''}),
            el('td', {text: a.error_class || ''}),
            el('td', {}, stderrCell(a.message))));
    }
    if (!attempts.children.length) attempts.append(emptyRow(8, 'No attempt yet.'));
}

function paintDetailProgress(job) {
    const pct = job.state === 'completed' ? 100 : job.progress_percent || 0;
    const line = progressLine(job, pct);
    setProgress(detailBar, pct, line);
    $('#job-detail-progress-text').textContent = line;
}

// The end of ffmpeg's stderr: its last line shown, the whole tail one click away.
function stderrCell(text) {
    if (!text) return '';
    const lines = text.trimEnd().split('\n');
    if (lines.length === 1 && text.length < 120) return el('span', {text});
    return el('details', {}, el('summary', {text: lines[lines.length - 1].slice(0, 120)}),
              el('pre', {class: 'stderr', text}));
}

// [[label, value, 'pre'?], ...] -> <dt>/<dd> pairs; empty values are left out.
function facts(dl, pairs) {
    clear(dl);
    for (const [label, value, kind] of pairs) {
        if (value === null || value === undefined || value === '') continue;
        dl.append(el('dt', {text: label}), el('dd', {}, kind === 'pre' ? el('pre', {text: value}) : String(value)));
    }
}

// {video: {codec: 'libx264'}, extra_args: ['-movflags', '+faststart']} -> [['video.codec', 'libx264'], ...]
function flatten(obj, prefix = '') {
    const out = [];
    for (const [k, v] of Object.entries(obj)) {
        if (v === null || v === undefined) continue;
        const key = prefix ? `${prefix}.${k}` : k;
        if (Array.isArray(v)) out.push([key, v.join(' ')]);
        else if (typeof v === 'object') out.push(...flatten(v, key));
        else out.push([key, String(v)]);
    }
    return out;
}

// The job's own event stream replays its whole history first: that is the timeline.
function openDetailEvents(id) {
    if (detailEvents) detailEvents.close();
    const es = new EventSource(url(`/jobs/${encodeURIComponent(id)}/events`));
    detailEvents = es;
    let last = '';
    es.addEventListener('state', (ev) => onEvent(ev, (d) => {
        if (detailId !== id) return;
        last = d.state;
        $('#job-events').append(el('li', {dataset: {state: d.state}},
            el('time', {datetime: d.at, text: fmtTime(d.at)}), ' ',
            el('span', {class: 'state', dataset: {state: d.state}, text: d.state}),
            d.message ? el('span', {class: 'muted', text: ` ${d.message}`}) : null));
        if (detailJob && detailJob.state !== d.state) refreshDetailSoon();
    }));
    es.addEventListener('progress', (ev) => onEvent(ev, (d) => {
        if (detailId !== id || !detailJob) return;
        Object.assign(detailJob, {progress_percent: d.progress_percent, fps: d.fps, speed: d.speed,
                                  eta_seconds: d.eta_seconds});
        paintDetailProgress(detailJob);
    }));
    es.addEventListener('error', () => {
        // The server ends the stream after a terminal state (a retried job's history has several:
        // only the end of the stream tells). Reconnecting would only get the same end again.
        if (TERMINAL.has(last)) es.close();
        if (es.readyState === EventSource.CLOSED && detailEvents === es) detailEvents = null;
    });
}

async function detailAction(action) {
    const id = detailId;
    if (!id) return;
    const button = action === 'cancel' ? $('#job-cancel') : $('#job-retry');
    button.disabled = true;
    try {
        if (action === 'cancel') {
            const r = await del(`/jobs/${encodeURIComponent(id)}`);
            toast(`Job ${r?.state === 'canceling' ? 'is being canceled' : 'canceled'}.`, 'info');
        } else {
            await post(`/jobs/${encodeURIComponent(id)}/retry`);
            toast('Job queued again.', 'info');
            if (!detailEvents) { clear($('#job-events')); openDetailEvents(id); }
        }
    } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) toast(err.message);
    }
    await refreshDetail();
}
