// Which requests can be resumed after a tunnel drop, and the request that
// resumes one. A WATCH (`?watch=true`, or the legacy `/watch/` paths) goes on
// from the last resourceVersion the caller saw; `pods/{name}/log?follow=true`
// goes on from the last line's timestamp, and only when the caller asked for
// `timestamps=true` (without them a resumed follow cannot tell which lines the
// caller already has). Protobuf watches are not resumed: their frames are not
// read here (see watch-tracker.ts), so the cut is passed on as it is.

/** Request header that turns resuming off for one request (`x-pipeops-resume: off`). Never sent upstream. */
export const RESUME_HEADER = 'x-pipeops-resume';

/** Values of {@link RESUME_HEADER} that turn resuming off. */
const OFF = new Set(['off', 'false', '0', 'no']);

/** A request that may be resumed. */
export interface ResumePlan {
  kind: 'watch' | 'logs';
  /** Path and query of the first request, as sent (for a watch, with `allowWatchBookmarks=true` added). */
  path: string;
  /** The caller asked for BOOKMARK events itself (else the ones added here are not passed on). */
  callerBookmarks: boolean;
  /** Initial events were asked for (`sendInitialEvents=true`): a resume needs their end marker seen first. */
  initialEvents: boolean;
  /** The watch's `timeoutSeconds`, if any: a resume asks only for what is left of it. */
  timeoutSeconds: number | undefined;
}

const WATCH_PATH = /^\/(?:api\/[^/]+|apis\/[^/]+\/[^/]+)\/watch\//;
const LOG_PATH = /^\/api\/v1\/namespaces\/[^/]+\/pods\/[^/]+\/log$/;

function isTrue(v: string | null): boolean {
  return v === 'true' || v === '1';
}

/** True when the header value turns resuming off. */
export function resumeOff(value: string | undefined): boolean {
  return value !== undefined && OFF.has(value.trim().toLowerCase());
}

/**
 * The plan for a request, or undefined when it is not resumable: not a GET,
 * not a watch or a followed log, a followed log without `timestamps=true`
 * or with `limitBytes`, or a watch whose `accept` asks for protobuf.
 */
export function planResume(method: string, path: string, accept: string | undefined): ResumePlan | undefined {
  if (method.toUpperCase() !== 'GET' || !/watch|\/log/.test(path)) return undefined;
  let url: URL;
  try {
    url = new URL(path, 'http://resume.invalid');
  } catch {
    return undefined;
  }
  const q = url.searchParams;
  if (isTrue(q.get('watch')) || WATCH_PATH.test(url.pathname)) {
    // A client that accepts protobuf may get it; its frames are not tracked here.
    if (accept !== undefined && /protobuf/i.test(accept)) return undefined;
    const callerBookmarks = isTrue(q.get('allowWatchBookmarks'));
    // Bookmarks keep the last resourceVersion fresh while nothing changes, so a resume after a quiet
    // hour is not refused as too old; the ones the caller did not ask for are not passed on.
    if (!callerBookmarks) q.set('allowWatchBookmarks', 'true');
    const timeout = Number(q.get('timeoutSeconds') ?? '');
    return {
      kind: 'watch',
      path: `${url.pathname}${url.search}`,
      callerBookmarks,
      initialEvents: isTrue(q.get('sendInitialEvents')),
      timeoutSeconds: Number.isFinite(timeout) && timeout > 0 ? timeout : undefined,
    };
  }
  if (LOG_PATH.test(url.pathname) && isTrue(q.get('follow')) && isTrue(q.get('timestamps')) && !q.has('limitBytes')) {
    return { kind: 'logs', path, callerBookmarks: false, initialEvents: false, timeoutSeconds: undefined };
  }
  return undefined;
}

/**
 * The path of a request resuming a watch after `lastResourceVersion`: the
 * same query with `resourceVersion` set, bookmarks asked for, initial events
 * no longer asked for, and what is left of `timeoutSeconds` (undefined when
 * nothing is left: the watch would have ended by now).
 */
export function watchResumePath(plan: ResumePlan, lastResourceVersion: string | undefined, elapsedMs: number): string | undefined {
  const url = new URL(plan.path, 'http://resume.invalid');
  const q = url.searchParams;
  if (lastResourceVersion !== undefined) {
    q.set('resourceVersion', lastResourceVersion);
    q.delete('sendInitialEvents');
    q.delete('resourceVersionMatch');
  }
  q.set('allowWatchBookmarks', 'true');
  if (plan.timeoutSeconds !== undefined) {
    const left = Math.ceil(plan.timeoutSeconds - elapsedMs / 1000);
    if (left <= 0) return undefined;
    q.set('timeoutSeconds', String(left));
  }
  return `${url.pathname}${url.search}`;
}

/**
 * The path of a request resuming a followed log at `sinceTime` (RFC 3339,
 * whole seconds: what the kubelet honours): `sinceSeconds` and `tailLines`
 * removed, so every line from then on comes back.
 */
export function logsResumePath(plan: ResumePlan, sinceTime: string): string {
  const url = new URL(plan.path, 'http://resume.invalid');
  const q = url.searchParams;
  q.delete('sinceSeconds');
  q.delete('tailLines');
  q.set('sinceTime', sinceTime);
  return `${url.pathname}${url.search}`;
}
