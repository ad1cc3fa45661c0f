// Admin: API keys (create with the secret shown once, list, revoke) and storage pools with usage.

import {$, el, clear, toast, fmtBytes, timeCell, emptyRow, progressBar, setProgress} from './dom.js';
import {get, post, del} from './api.js';

export function init() {
    $('#key-create').addEventListener('submit', createKey);
    $('#keys-show-revoked').addEventListener('change', loadKeys);
    $('#key-secret-hide').addEventListener('click', hideSecret);
    $('#key-secret-copy').addEventListener('click', async () => {
        try {
            await navigator.clipboard.writeText($('#key-secret').textContent);
            toast('Copied.', 'info');
        } catch {
            // No clipboard access (plain http on another host): select the text for a manual copy.
            getSelection().selectAllChildren($('#key-secret'));
        }
    });
}

export function show() {
    loadKeys();
    loadPools();
}

export function hide() { hideSecret(); }

export function reset() {
    hideSecret();
    clear($('#keys-table tbody'));
    clear($('#pools-table tbody'));
}

function hideSecret() {
    $('#key-secret').textContent = '';
    $('#key-secret-box').hidden = true;
}

async function createKey(e) {
    e.preventDefault();
    const button = $('#key-create-submit');
    button.disabled = true;
    try {
        const key = await post('/keys', {name: $('#key-name').value.trim(), role: $('#key-role').value});
        $('#key-secret').textContent = key.key;  // the only time the server ever shows it
        $('#key-secret-box').hidden = false;
        $('#key-name').value = '';
        await loadKeys();
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    } finally {
        button.disabled = false;
    }
}

async function loadKeys() {
    try {
        const list = await get('/keys', {all: $('#keys-show-revoked').checked ? 'true' : ''});
        const body = clear($('#keys-table tbody'));
        for (const k of list.items || []) {
            const revoke = el('button', {type: 'button', class: 'key-revoke small danger', text: 'Revoke',
                                         'aria-label': `Revoke key ${k.name}`, disabled: k.revoked});
            revoke.addEventListener('click', () => revokeKey(k, revoke));
            body.append(el('tr', {dataset: {keyId: k.key_id}, class: k.revoked ? 'revoked' : null},
                el('td', {class: 'key-name', text: k.name}),
                el('td', {class: 'key-role', text: k.role}),
                el('td', {}, el('code', {text: k.prefix})),
                el('td', {}, timeCell(k.created_at)),
                el('td', {}, k.last_used_at ? timeCell(k.last_used_at) : 'never'),
                el('td', {}, k.revoked ? 'revoked' : revoke)));
        }
        if (!body.children.length) body.append(emptyRow(6, 'No keys.'));
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
}

async function revokeKey(k, button) {
    button.disabled = true;
    try {
        await del(`/keys/${encodeURIComponent(k.key_id)}`);
        toast(`Key ${k.name} revoked.`, 'info');
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
    await loadKeys();  // revoking one's own key ends the session: the 401 leads to sign-in
}

async function loadPools() {
    try {
        const list = await get('/pools');
        const body = clear($('#pools-table tbody'));
        for (const p of list.items || []) {
            // Without a configured cap the pool can grow to what it holds plus what is free.
            const capacity = p.capacity_bytes ?? (p.used_bytes + p.free_bytes);
            const bar = progressBar('pool-usage', `Usage of pool ${p.name}`);
            const share = capacity ? (p.used_bytes / capacity) * 100 : 0;
            setProgress(bar, share, `${Math.round(share)}% used`);
            bar.classList.toggle('high', share >= 90);
            body.append(el('tr', {dataset: {pool: p.name}},
                el('td', {text: p.name}),
                el('td', {}, el('code', {text: p.path || ''})),
                el('td', {}, bar, el('span', {class: 'muted', text: ` ${Math.round(share)}%`})),
                el('td', {text: fmtBytes(p.used_bytes)}),
                el('td', {text: fmtBytes(p.reserved_bytes)}),
                el('td', {text: fmtBytes(p.free_bytes)}),
                el('td', {text: p.capacity_bytes === null || p.capacity_bytes === undefined ? 'disk' : fmtBytes(p.capacity_bytes)}),
                el('td', {text: p.writable ? 'yes' : 'no'})));
        }
        if (!body.children.length) body.append(emptyRow(8, 'No pools configured.'));
    } catch (err) {
        if (err.status !== 401) toast(err.message);
    }
}
