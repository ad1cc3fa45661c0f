// Job states and the one-line progress summary, shared by the job list and the job detail.

import {fmtDuration, fmtNum} from './dom.js';

export const ACTIVE = new Set(['awaiting_upload', 'queued', 'assigned', 'running']);  // cancelable
export const RETRYABLE = new Set(['failed', 'canceled']);
export const TERMINAL = new Set(['completed', 'failed', 'canceled']);

// "47% · 58 fps · 1.94× · ETA 21s" (the live parts only while running)
export function progressLine(j, pct) {
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

// The SSE `data` of an event as an object (null when it is not one about a job).
export function eventData(ev) {
    try {
        const d = JSON.parse(ev.data);
        return d && d.job_id ? d : null;
    } catch {
        return null;
    }
}
