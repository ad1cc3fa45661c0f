// The one way the dashboard talks to /api/v1: the session cookie rides along (same-origin
// fetch), state-changing requests carry X-CSRF-Token, and errors become ApiError with the
// server's {"error":{code,message,details,retryable}} envelope.

export const API = '/api/v1';

// Only the CSRF token is kept, in memory: never the API key, never in web storage.
let csrfToken = '';
let unauthorizedHandler = () => {};

export function setCsrf(token) { csrfToken = token || ''; }
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

export class ApiError extends Error {
    constructor(status, code, message, details = {}, retryable = false) {
        super(message);
        this.status = status;          // 0: the request never got an answer (network error)
        this.code = code;
        this.details = details || {};
        this.retryable = retryable;
    }
}

// Build "/api/v1/jobs?state=x&q=y" from a path and a query object (empty values are left out).
export function url(path, query = {}) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null && v !== '' && v !== false) params.set(k, String(v));
    }
    const qs = params.toString();
    return API + path + (qs ? `?${qs}` : '');
}

// request('GET', '/jobs', {query}) / request('POST', '/keys', {json}) / request('PUT', p, {body, headers})
// Answers the parsed JSON body (null when there is none). `quiet401` keeps a 401 from sending
// the user to the sign-in page (the sign-in calls themselves); `signal` aborts (an AbortController's).
export async function request(method, path, {query, json, body, headers = {}, quiet401 = false, signal} = {}) {
    const h = {Accept: 'application/json', ...headers};
    if (method !== 'GET' && method !== 'HEAD' && csrfToken) h['X-CSRF-Token'] = csrfToken;
    if (json !== undefined) {
        h['Content-Type'] = 'application/json';
        body = JSON.stringify(json);
    }
    let res;
    let text;
    try {
        res = await fetch(url(path, query), {method, headers: h, body, signal, credentials: 'same-origin',
                                             cache: 'no-store'});
        text = await res.text();
    } catch (e) {
        // No answer, or the connection broke while it was read: the caller may retry.
        throw new ApiError(0, 'NETWORK', `network error: ${e.message || e}`, {}, true);
    }
    let data = null;
    if (text) {
        try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
        const err = data && data.error ? data.error : {};
        const e = new ApiError(res.status, err.code || `HTTP_${res.status}`,
                               err.message || `${method} ${path}: HTTP ${res.status}`,
                               err.details, err.retryable ?? res.status >= 500);
        if (res.status === 401 && !quiet401) unauthorizedHandler(e);
        throw e;
    }
    return data;
}

export const get = (path, query, opts) => request('GET', path, {...opts, query});
export const post = (path, json, opts) => request('POST', path, {...opts, json});
export const del = (path, opts) => request('DELETE', path, opts);

// Walk every page of a list endpoint (for "apply to all filtered"). `onPage(count)` reports progress.
export async function listAll(path, query, onPage = () => {}) {
    const items = [];
    let cursor = '';
    do {
        const page = await get(path, {...query, limit: 500, cursor});
        items.push(...(page.items || []));
        onPage(items.length);
        cursor = page.next_cursor || '';
    } while (cursor);
    return items;
}
