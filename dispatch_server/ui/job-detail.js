// The detail panel of one job: facts, ffmpeg command, options, stream plan, attempts (with the
// end of ffmpeg's stderr), the event timeline (the job's own event stream replays its history),
// and the actions cancel, retry and download.

import {$, el, clear, toast, progressBar, setProgress, fmtBytes, fmtDuration, fmtTime, timeCell, debounce,
        emptyRow} from './dom.js';
import {get, post, del, url} from './api.js';
import {ACTIVE, RETRYABLE, TERMINAL, progressLine, eventData} from './job-state.js';

let hooks = {close: () => {}, onJob: () => {}};

let detailBar = null;
let detailId = null;
let detailJob = null;
let detailEvents = null;
let engineNames = {at: 0, map: new Map()};

// hooks.close(): leave the detail (the list changes the URL); hooks.onJob(job): fresh job data.
export function init(h) {
    hooks = h;
    $('#job-detail-close').addEventListener('click', () => hooks.close());
    $('#job-detail').addEventListener('keydown', (e) => { if (e.key === 'Escape') hooks.close(); });
    $('#job-cancel').addEventListener('click', () => detailAction('cancel'));
    $('#job-retry').addEventListener('click', () => detailAction('retry'));
    detailBar = progressBar('detail-progress', 'Job progress');
    $('#job-detail-progress-slot').append(detailBar);
}

export const currentId = () => detailId;

// Something changed the job: fetch it again unless it is finished anyway.
export function refreshIfActive() {
    if (detailJob && !TERMINAL.has(detailJob.state)) refreshDetailSoon();
}

export async function open(id) {
    const panel = $('#job-detail');
    const fresh = detailId !== id;
    detailId = id;
    panel.dataset.jobId = id;
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

// Answers whether the keyboard focus was in the panel (the list then puts it back on the row).
export function close() {
    const hadFocus = $('#job-detail').contains(document.activeElement);
    detailId = null;
    detailJob = null;
    if (detailEvents) detailEvents.close();
    detailEvents = null;
    $('#job-detail').hidden = true;
    return hadFocus;
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
    hooks.onJob(job);
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
    renderSplit(job.split);
}

// Split mode: the cut's outcome and every task (segments, then the audio) with its engine.
function renderSplit(split) {
    $('#job-split').hidden = !split;
    if (!split) return;
    const parts = [`state ${split.state}`];
    if (split.reason) parts.push(split.reason);
    if (split.frames) parts.push(`${split.frames} frames at ${split.frame_rate}`);
    if (split.split_seconds !== undefined) parts.push(`cut in ${split.split_seconds} s`);
    if (split.join_seconds !== undefined) parts.push(`joined in ${split.join_seconds} s`);
    $('#job-split-summary').textContent = parts.join(' · ');
    const rows = clear($('#job-segments tbody'));
    for (const t of split.segments || []) {
        const host = t.engine_id ? engineNames.map.get(t.engine_id) || t.engine_id : '';
        rows.append(el('tr', {dataset: {state: t.state}},
            el('td', {text: t.kind === 'audio' ? 'audio' : `segment ${t.index}`, title: t.task_id}),
            el('td', {text: t.kind === 'audio' ? '' : t.frames}),
            el('td', {text: fmtDuration(t.start_seconds || 0)}),
            el('td', {text: fmtDuration(t.duration_seconds || 0)}),
            el('td', {text: t.state}),
            el('td', {text: `${Math.round(t.progress_percent || 0)} %`}),
            el('td', {text: host}),
            el('td', {text: (t.attempts || []).length})));
    }
    if (!rows.children.length) rows.append(emptyRow(8, split.state === 'pending' ? 'Waiting to be cut.' : 'No tasks.'));
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
    es.addEventListener('state', (ev) => {
        const d = eventData(ev);
        if (!d || detailId !== id) return;
        last = d.state;
        $('#job-events').append(el('li', {dataset: {state: d.state}},
            el('time', {datetime: d.at, text: fmtTime(d.at)}), ' ',
            el('span', {class: 'state', dataset: {state: d.state}, text: d.state}),
            d.message ? el('span', {class: 'muted', text: ` ${d.message}`}) : null));
        if (detailJob && detailJob.state !== d.state) refreshDetailSoon();
    });
    es.addEventListener('progress', (ev) => {
        const d = eventData(ev);
        if (!d || detailId !== id || !detailJob) return;
        Object.assign(detailJob, {progress_percent: d.progress_percent, fps: d.fps, speed: d.speed,
                                  eta_seconds: d.eta_seconds});
        paintDetailProgress(detailJob);
    });
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
        if (err.status !== 401) toast(err.message);
    }
    await refreshDetail();
}
