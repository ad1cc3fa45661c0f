// DOM building and formatting helpers. Server data only ever reaches the page as text
// (textContent / attribute values), never as markup: the CSP forbids inline script anyway,
// and a file named `<img src=x onerror=...>` must stay a file name.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// el('td', {class: 'x', text: name, dataset: {jobId: id}, onclick: fn}, child, ...)
// Attribute values and children that are strings become text; null/undefined/false are skipped.
export function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    return fill(node, attrs, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function svg(tag, attrs = {}, ...children) {
    return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(node, attrs, children) {
    for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === 'class') node.setAttribute('class', value);
        else if (key === 'text') node.textContent = String(value);
        else if (key === 'dataset') Object.assign(node.dataset, value);
        else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
        else if (value === true) node.setAttribute(key, '');
        else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
        if (child === null || child === undefined || child === false) continue;
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
}

export function clear(node) {
    node.replaceChildren();
    return node;
}

// --- progress bars (role=progressbar; the fill width is set through the CSSOM, which the CSP allows)

export function progressBar(className, label) {
    const fill = el('span', {class: 'bar-fill'});
    const bar = el('span', {class: `bar ${className}`, role: 'progressbar', 'aria-valuemin': 0,
                            'aria-valuemax': 100, 'aria-valuenow': 0, 'aria-label': label}, fill);
    return bar;
}

export function setProgress(bar, percent, text) {
    const p = Math.max(0, Math.min(100, Math.round(Number(percent) || 0)));
    bar.setAttribute('aria-valuenow', String(p));
    bar.setAttribute('aria-valuetext', text || `${p}%`);
    bar.firstChild.style.width = `${p}%`;
}

// --- toast: the one place errors are shown (#toast has role=alert, so screen readers announce it)

let toastTimer = 0;
export function toast(message, kind = 'error') {
    const box = $('#toast');
    box.textContent = message;
    box.dataset.kind = kind;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 12000 : 4000);
}

// --- formatting

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function fmtBytes(n) {
    if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
    let v = Number(n);
    let i = 0;
    while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
    return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${UNITS[i]}`;
}

const pad2 = (n) => String(n).padStart(2, '0');

// 42s, 3m 05s, 1h 02m, 2d 03h
export function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return '–';
    let s = Math.max(0, Math.round(Number(seconds)));
    if (s < 60) return `${s}s`;
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${pad2(h)}h`;
    if (h) return `${h}h ${pad2(m)}m`;
    return `${m}m ${pad2(s)}s`;
}

// "just now", "3 min ago", "2 h ago", "in 5 min"; "–" for null.
export function fmtAgo(ts, now = Date.now()) {
    if (!ts) return '–';
    const t = Date.parse(ts);
    if (Number.isNaN(t)) return String(ts);
    const diff = Math.round((now - t) / 1000);
    const abs = Math.abs(diff);
    let text;
    if (abs < 10) return 'just now';
    if (abs < 60) text = `${abs} s`;
    else if (abs < 3600) text = `${Math.floor(abs / 60)} min`;
    else if (abs < 86400) text = `${Math.floor(abs / 3600)} h`;
    else text = `${Math.floor(abs / 86400)} d`;
    return diff >= 0 ? `${text} ago` : `in ${text}`;
}

export function fmtTime(ts) {
    if (!ts) return '–';
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

export function fmtNum(n, digits = 0) {
    if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
    return Number(n).toLocaleString(undefined, {maximumFractionDigits: digits});
}

// Absolute time as a tooltip, relative time as the text.
export function timeCell(ts) {
    return el('time', {datetime: ts || null, title: ts ? fmtTime(ts) : null, text: fmtAgo(ts)});
}

export function debounce(fn, ms) {
    let t = 0;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// A table body row that acts like a button: click or Enter/Space opens it.
export function activatableRow(tr, open) {
    tr.tabIndex = 0;
    tr.classList.add('clickable');
    tr.addEventListener('click', (e) => {
        if (e.target.closest('a, button, input, label')) return;  // controls inside the row act alone
        open();
    });
    tr.addEventListener('keydown', (e) => {
        if (e.target !== tr) return;
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); }
    });
    return tr;
}

export function emptyRow(cols, text) {
    return el('tr', {class: 'empty'}, el('td', {colspan: cols, text}));
}
