// Submit: pick or drop files, choose a preset and options, upload each file resumably:
//   POST /jobs {…options, source: {size, filename}}  -> job in awaiting_upload
//   PUT /jobs/{id}/source with Content-Range "bytes S-E/T", one chunk at a time
// A network error or a 5xx asks the server how much it holds (GET …/source) and goes on from there.

import {$, el, clear, toast, progressBar, setProgress, fmtBytes} from './dom.js';
import {get, post, del, request} from './api.js';

const CHUNK = 8 * 1024 * 1024;       // a lost connection costs at most one chunk
const MAX_RETRIES = 5;               // consecutive failures of one chunk before giving up
const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000];
const PARALLEL = 2;                  // files uploading at once

const items = [];                    // {file, li, bar, pct, state, status, jobId, actions}
let presetsLoaded = false;
let running = 0;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function init() {
    const input = $('#submit-files');
    const zone = $('#dropzone');
    input.addEventListener('change', () => { addFiles(input.files); input.value = ''; });
    zone.addEventListener('click', () => input.click());
    zone.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); }
    });
    for (const type of ['dragenter', 'dragover']) {
        zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add('over'); });
    }
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
        e.preventDefault();
        zone.classList.remove('over');
        if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
    });
    // A file dropped beside the zone must not make the browser navigate away to it.
    window.addEventListener('dragover', (e) => e.preventDefault());
    window.addEventListener('drop', (e) => e.preventDefault());
    $('#submit-start').addEventListener('click', start);
    $('#submit-clear').addEventListener('click', clearFinished);
    $('#submit-preset').addEventListener('change', describePreset);
}

export function show() {
    if (!presetsLoaded) loadPresets();
}

export function hide() {}  // uploads keep going while other pages are looked at

export function reset() {
    presetsLoaded = false;
    const select = clear($('#submit-preset'));
    select.append(el('option', {value: '', text: '(server default)'}));
    for (const it of items) stop(it);  // their requests would answer 401 anyway
    items.length = 0;
    clear($('#uploads'));
    updateStart();
}

// --- presets

let presets = [];

async function loadPresets() {
    try {
        const list = await get('/presets');
        presets = list.items || [];
        const select = clear($('#submit-preset'));
        select.append(el('option', {value: '', text: '(server default)'}));
        for (const p of presets) select.append(el('option', {value: p.name, text: p.name}));
        presetsLoaded = true;
        describePreset();
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
}

function describePreset() {
    const p = presets.find((x) => x.name === $('#submit-preset').value);
    $('#submit-preset-info').textContent = p ? [p.description, p.keeps && `Keeps: ${p.keeps}`].filter(Boolean).join('. ') : '';
}

// The JobSubmission fields from the form (the source declaration is added per file).
function submission() {
    const fields = ['#submit-crf', '#submit-scale', '#submit-abitrate', '#submit-priority'];
    for (const id of fields) {
        const input = $(id);
        if (!input.checkValidity()) throw new Error(`${input.labels[0]?.textContent || id}: ${input.validationMessage}`);
    }
    const job = {};
    const val = (id) => $(id).value.trim();
    if (val('#submit-preset')) job.preset = val('#submit-preset');
    if (val('#submit-container')) job.container = val('#submit-container');
    const video = {};
    if (val('#submit-vcodec')) video.codec = val('#submit-vcodec');
    if (val('#submit-crf')) video.crf = Number(val('#submit-crf'));
    if (val('#submit-scale')) video.scale = val('#submit-scale');
    if (Object.keys(video).length) job.video = video;
    if (val('#submit-abitrate')) job.audio = {bitrate: val('#submit-abitrate')};
    const priority = Number(val('#submit-priority') || 0);
    if (priority) job.priority = priority;
    return job;
}

// --- the upload list

function addFiles(fileList) {
    for (const file of fileList) {
        const bar = progressBar('upload-progress', `Upload of ${file.name}`);
        const pct = el('span', {class: 'upload-pct muted', text: ''});
        const state = el('span', {class: 'upload-state', text: 'waiting'});
        const actions = el('span', {class: 'upload-actions'});
        const li = el('li', {dataset: {fileName: file.name}},
            el('span', {class: 'upload-name', text: file.name}),
            el('span', {class: 'muted', text: fmtBytes(file.size)}),
            bar, pct, state, actions);
        const item = {file, li, bar, pct, state, actions, status: 'waiting', jobId: null};
        actions.append(el('button', {type: 'button', class: 'small', text: 'Remove', onclick: () => remove(item)}));
        items.push(item);
        $('#uploads').append(li);
    }
    updateStart();
}

// Stop an upload: abort the chunk in flight; the loop in upload() then gives up.
function stop(item) {
    item.stop = true;
    if (item.abort) item.abort.abort();
}

// Cancel button of a running upload: stop sending and cancel the job, which holds a partial source.
async function cancelUpload(item) {
    stop(item);
    if (!item.jobId) return;
    try {
        await del(`/jobs/${encodeURIComponent(item.jobId)}`);
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
}

function remove(item) {
    const i = items.indexOf(item);
    if (i >= 0 && item.status !== 'uploading') { items.splice(i, 1); item.li.remove(); }
    updateStart();
}

function clearFinished() {
    for (const it of [...items]) if (it.status === 'uploaded' || it.status === 'error') remove(it);
}

function updateStart() {
    $('#submit-start').disabled = !items.some((it) => it.status === 'waiting');
}

function setStatus(item, status, text = status) {
    item.status = status;
    item.state.textContent = text;
    item.li.dataset.status = status;
    clear(item.actions);
    if (status === 'waiting') item.actions.append(el('button', {type: 'button', class: 'small', text: 'Remove', onclick: () => remove(item)}));
    if (status === 'uploading') item.actions.append(el('button', {type: 'button', class: 'small danger', text: 'Cancel', onclick: () => cancelUpload(item)}));
    if (status === 'error' && item.jobId && !item.stop) {
        // The job exists and holds what arrived: continue it instead of starting over.
        item.actions.append(el('button', {type: 'button', class: 'small', text: 'Resume',
                                          onclick: () => { setStatus(item, 'waiting'); start(); }}));
    }
    if (status === 'uploaded') {
        item.actions.append(el('a', {href: `#/jobs/${encodeURIComponent(item.jobId)}`, text: 'View job'}));
    }
    updateStart();
}

function setPercent(item, done) {
    const total = item.file.size || 1;
    const p = Math.floor((done / total) * 100);
    setProgress(item.bar, p, `${p}% of ${fmtBytes(item.file.size)}`);
    item.pct.textContent = `${p}%`;
}

function start() {
    let job;
    try {
        job = submission();
    } catch (err) {
        toast(err.message);
        return;
    }
    for (const it of items) if (it.status === 'waiting' && !it.jobId) it.job = job;
    for (const it of items) if (it.status === 'waiting') it.status = 'pending';  // claimed by the queue below
    updateStart();
    while (running < PARALLEL) { running++; worker().finally(() => { running--; }); }
}

async function worker() {
    for (;;) {
        const item = items.find((it) => it.status === 'pending');
        if (!item) return;
        setStatus(item, 'uploading');
        try {
            await upload(item);
            item.li.dataset.jobId = item.jobId;
            setPercent(item, item.file.size);
            setStatus(item, 'uploaded');
        } catch (err) {
            const message = item.stop ? 'canceled' : err.message;
            setStatus(item, 'error', `error: ${message}`);
            if (!item.stop && err.status !== 401) toast(`${item.file.name}: ${message}`);
        }
    }
}

// How many bytes the server holds (GET …/source), or null when the source is complete.
// A job that left awaiting_upload another way (canceled, failed) ends the upload with an error.
async function storedOffset(path) {
    const st = await get(path);
    if (!st.complete) return st.offset || 0;
    if (st.state === 'canceled' || st.state === 'failed') throw new Error(`the job is ${st.state}`);
    return null;
}

async function upload(item) {
    const {file} = item;
    const path = () => `/jobs/${encodeURIComponent(item.jobId)}/source`;
    let offset = 0;
    if (!file.size) throw new Error('the file is empty');
    if (!item.jobId) {
        const created = await post('/jobs', {...item.job, source: {size: file.size, filename: file.name}});
        item.jobId = created.job_id;
        if (item.stop) { await cancelUpload(item); throw new Error('canceled'); }
    } else {
        offset = await storedOffset(path());  // resuming: the server says how much it holds
        if (offset === null) return;
    }
    setPercent(item, offset);
    let failures = 0;
    for (;;) {
        if (item.stop) throw new Error('canceled');
        const end = Math.min(file.size, offset + CHUNK) - 1;
        item.abort = new AbortController();
        try {
            const r = await request('PUT', path(), {
                signal: item.abort.signal,
                body: file.slice(offset, end + 1),
                headers: {'Content-Type': 'application/octet-stream', 'Content-Range': `bytes ${offset}-${end}/${file.size}`},
            });
            failures = 0;
            offset = Number.isFinite(r?.offset) ? r.offset : end + 1;
            setPercent(item, offset);
            if (r?.complete || offset >= file.size) return;
        } catch (err) {
            if (item.stop) throw new Error('canceled');
            // 409 CONFLICT names the server's offset (or another PUT of ours still being received).
            const resync = err.status === 409 && Number.isFinite(err.details?.offset);
            const transient = err.status === 0 || (err.status >= 500 && err.status !== 507) || resync ||
                              err.status === 409 || err.status === 429;
            if (!transient || ++failures > MAX_RETRIES) throw err;
            item.pct.textContent = `retry ${failures}/${MAX_RETRIES}…`;
            await sleep(BACKOFF_MS[failures - 1]);
            if (resync) {
                offset = err.details.offset;
            } else {
                try {
                    offset = await storedOffset(path());
                    if (offset === null) return;  // the last chunk did arrive; only its answer was lost
                } catch (e) {
                    if (e.status === 401 || e.status === undefined) throw e;  // else: PUT again from there
                }
            }
            setPercent(item, offset);
        }
    }
}
