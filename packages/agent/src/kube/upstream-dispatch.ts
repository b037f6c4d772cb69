// Sending one admitted request to the API server with undici: which pool
// carries it, and how the stream it came on aborts it.
import type { Exchange } from './exchange.ts';
import type { UpstreamUse } from './upstream.ts';
import type { KubeVerb } from './verb.ts';

/**
 * Which pool a request goes through: long-lived streaming reads — a WATCH, or
 * a followed log (`GET …/pods/NAME/log?follow=true`) — go where HTTP/2 may
 * carry many of them on one connection; everything else stays HTTP/1.1.
 */
export function upstreamUse(verb: KubeVerb, method: string, target: string): UpstreamUse {
  if (verb === 'watch') return 'stream';
  if (method !== 'GET') return 'request';
  const q = target.indexOf('?');
  if (q === -1 || !target.slice(0, q).endsWith('/log')) return 'request';
  const follow = new URLSearchParams(target.slice(q + 1)).get('follow');
  return follow === 'true' || follow === '1' ? 'stream' : 'request';
}

/** From undici's `onRequestStart`: the stream closing now aborts the upstream request; one already closed aborts it at once. */
export function abortWithStream(ex: Exchange, controller: { abort(reason: Error): void }): void {
  ex.inFlight = controller;
  if (ex.gone) controller.abort(new Error('the stream closed'));
}
