// distconv dashboard: sign-in, the shell (nav, who am I, sign-out) and hash routing.
// Each page lives in its own module with the same small interface:
//   init()                  once: wire up its static elements
//   show(params, session)   the page becomes visible (params: the rest of the hash path)
//   hide()                  stop timers and streams
//   reset()                 forget everything (sign-out)

import {$, $$, toast} from './dom.js';
import {request, setCsrf, onUnauthorized, ApiError} from './api.js';
import * as overview from './overview.js';
import * as jobs from './jobs.js';
import * as submit from './submit.js';
import * as engines from './engines.js';
import * as admin from './admin.js';

// route name -> [page module, section id, nav link id, admin only]
const ROUTES = {
    'overview': [overview, 'page-overview', 'nav-overview', false],
    'jobs': [jobs, 'page-jobs', 'nav-my-jobs', false],
    'all-jobs': [jobs, 'page-jobs', 'nav-all-jobs', true],
    'submit': [submit, 'page-submit', 'nav-submit', false],
    'engines': [engines, 'page-engines', 'nav-engines', false],
    'admin': [admin, 'page-admin', 'nav-admin', true],
};
const PAGES = [overview, jobs, submit, engines, admin];

let session = null;     // the answer of POST/GET /sessions: {key_id, name, role, csrf_token, ...}
let current = null;     // the page module on screen

const isAdmin = () => session && session.role === 'admin';

// --- sign-in / sign-out

function showSignin(message = '') {
    if (current) current.hide();
    current = null;
    session = null;
    setCsrf('');
    PAGES.forEach((p) => p.reset());
    $('#app').hidden = true;
    $('#toast').hidden = true;
    $('#signin-view').hidden = false;
    $('#signin-error').textContent = message;
    $('#signin-key').focus();
}

function startApp(s) {
    session = s;
    setCsrf(s.csrf_token);
    $('#signin-view').hidden = true;
    $('#app').hidden = false;
    $('#whoami').textContent = `${s.name} (${s.role})`;
    // Admin-only navigation is hidden for users; the server refuses their API calls anyway (403).
    $$('#nav-all-jobs, #nav-admin').forEach((a) => { a.hidden = !isAdmin(); });
    document.body.classList.toggle('is-admin', isAdmin());
    if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/overview';
    else route();
}

async function signIn(e) {
    e.preventDefault();
    const input = $('#signin-key');
    const button = $('#signin-submit');
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    $('#signin-error').textContent = '';
    try {
        const s = await request('POST', '/sessions', {json: {key}, quiet401: true});
        input.value = '';  // the key is not kept anywhere once exchanged
        startApp(s);
    } catch (err) {
        $('#signin-error').textContent = err.message;
    } finally {
        button.disabled = false;
    }
}

async function signOut() {
    try {
        await request('DELETE', '/sessions/current', {quiet401: true});
    } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) toast(err.message);
    }
    showSignin();
}

// --- routing: #/name[/param]

function route() {
    if (!session) return;
    const [name = 'overview', ...rest] = location.hash.replace(/^#\/?/, '').split('/');
    let entry = ROUTES[name];
    if (!entry || (entry[3] && !isAdmin())) {
        location.replace('#/overview');
        return;
    }
    const [page, sectionId, navId] = entry;
    if (current && current !== page) current.hide();
    $$('.page').forEach((s) => { s.hidden = s.id !== sectionId; });
    $$('nav a').forEach((a) => {
        if (a.id === navId) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
    });
    const changed = current !== page;
    current = page;
    document.title = `${$('#' + navId).textContent} · distconv`;
    page.show({name, id: rest.map(decodeURIComponent).join('/'), changed}, session);
}

// --- boot

async function boot() {
    PAGES.forEach((p) => p.init());
    $('#signin').addEventListener('submit', signIn);
    $('#signout').addEventListener('click', signOut);
    window.addEventListener('hashchange', route);
    onUnauthorized(() => {
        if (session) showSignin('Your session has ended; sign in again.');
    });
    try {
        // A reload keeps the HttpOnly cookie: recover the session (and its CSRF token) from the server.
        startApp(await request('GET', '/sessions/current', {quiet401: true}));
    } catch (err) {
        showSignin(err.status === 401 || err.status === 0 ? '' : err.message);
    }
}

boot();
