// The JSON message protocol (/ws/k8s, the original VM agent's shape): a
// list, a WATCH across changes, cancel, and the socket still serving after
// it. The protocol is the gateway's own endpoint; the direct and proxy runs
// do the same HTTP requests (list, ?watch=true stream, abort) so the events
// can be compared.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { CLUSTER_NAMES } from '../harness/env.ts';
import { check, type Scenario, type Ctx } from '../harness/scenario.ts';

type Msg = Record<string, unknown> & { id?: string };

async function viaWebSocket(ctx: Ctx, change: () => Promise<void>, expectEvents: number): Promise<string[]> {
  const { tunnel } = ctx.env;
  const ws = new WebSocket(`${tunnel.gatewayUrl.replace(/^https/, 'wss')}/ws/k8s?cluster=${CLUSTER_NAMES.full}`, {
    ca: readFileSync(tunnel.caFile, 'utf8'),
    headers: { authorization: `Bearer ${tunnel.runnerToken}` },
  });
  const inbox: Msg[] = [];
  let wake: (() => void) | undefined;
  ws.on('message', (d) => {
    inbox.push(JSON.parse(String(d)) as Msg);
    wake?.();
  });
  const next = async (pred: (m: Msg) => boolean, what: string, ms = 30_000): Promise<Msg> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = inbox.findIndex(pred);
      if (i >= 0) return inbox.splice(i, 1)[0] as Msg;
      if (Date.now() > deadline) throw new Error(`/ws/k8s: no ${what} within ${ms} ms (got ${JSON.stringify(inbox).slice(0, 500)})`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200).unref();
      });
    }
  };
  try {
    await once(ws, 'open');
    const out: string[] = [];
    const path = `/api/v1/namespaces/${ctx.ns}/configmaps`;
    ws.send(JSON.stringify({ id: 'list-1', method: 'GET', path, headers: { Accept: 'application/json' } }));
    const list = await next((m) => m.id === 'list-1', 'list reply');
    const body = list.body as { items: Array<{ metadata: { name: string } }>; metadata: { resourceVersion: string } };
    out.push(
      `list: ${list.status} ${body.items
        .map((i) => i.metadata.name)
        .filter((n) => n !== 'kube-root-ca.crt')
        .join(',')}`,
    );
    ws.send(JSON.stringify({ id: 'watch-1', method: 'GET', path, query: { watch: ['true'], resourceVersion: [body.metadata.resourceVersion] }, stream: true }));
    const head = await next((m) => m.id === 'watch-1' && typeof m.status === 'number', 'watch head');
    out.push(`watch: ${head.status}`);
    await change();
    for (let i = 0; i < expectEvents; i++) {
      const ev = await next(
        (m) => m.id === 'watch-1' && m.chunk !== undefined && !JSON.stringify(m.chunk).includes('"name":"kube-root-ca.crt"'),
        `watch event ${i + 1}`,
      );
      const c = ev.chunk as { type: string; object: { metadata: { name: string }; data?: Record<string, string> } };
      out.push(`${c.type} ${c.object.metadata.name} ${c.object.data?.v ?? ''}`.trim());
    }
    ws.send(JSON.stringify({ id: 'watch-1', cancel: true }));
    const end = await next((m) => m.id === 'watch-1' && (m.done === true || m.error !== undefined), 'end of the cancelled stream', 10_000);
    check(end.done === true, `cancel ended with ${JSON.stringify(end)}`);
    out.push('cancel: stream ended');
    // a malformed message gets an error naming the field; the socket keeps working
    ws.send(JSON.stringify({ id: 'bad-1', method: 'GET' }));
    const bad = await next((m) => m.id === 'bad-1', 'error for a malformed message');
    check(bad.error !== undefined, `malformed message: ${JSON.stringify(bad)}`);
    ws.send(JSON.stringify({ id: 'after-1', method: 'GET', path: '/version' }));
    const after = await next((m) => m.id === 'after-1', 'request after cancel');
    out.push(`after: ${after.status}`);
    return out;
  } finally {
    ws.close();
  }
}

async function viaHttp(ctx: Ctx, change: () => Promise<void>, expectEvents: number): Promise<string[]> {
  const path = `/api/v1/namespaces/${ctx.ns}/configmaps`;
  const out: string[] = [];
  const list = await ctx.t.http(path, { headers: { accept: 'application/json' } });
  const body = JSON.parse(list.body.toString()) as { items: Array<{ metadata: { name: string } }>; metadata: { resourceVersion: string } };
  out.push(
    `list: ${list.status} ${body.items
      .map((i) => i.metadata.name)
      .filter((n) => n !== 'kube-root-ca.crt')
      .join(',')}`,
  );
  const w = await ctx.t.httpStream(`${path}?watch=true&resourceVersion=${body.metadata.resourceVersion}`);
  out.push(`watch: ${w.status}`);
  const events: string[] = [];
  let partial = '';
  let wake: (() => void) | undefined;
  w.body.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (l.trim() === '') continue;
      const c = JSON.parse(l) as { type: string; object: { metadata: { name: string }; data?: Record<string, string> } };
      if (c.object.metadata.name === 'kube-root-ca.crt') continue;
      events.push(`${c.type} ${c.object.metadata.name} ${c.object.data?.v ?? ''}`.trim());
    }
    wake?.();
  });
  await change();
  const deadline = Date.now() + 30_000;
  while (events.length < expectEvents) {
    if (Date.now() > deadline) throw new Error(`watch: ${events.length}/${expectEvents} events`);
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 200).unref();
    });
  }
  out.push(...events.slice(0, expectEvents));
  w.abort();
  out.push('cancel: stream ended');
  const after = await ctx.t.http('/version');
  out.push(`after: ${after.status}`);
  return out;
}

export const jsonProtocolScenarios: Scenario[] = [
  {
    name: 'JSON protocol /ws/k8s: list, WATCH, cancel',
    group: 'json-protocol',
    async run(ctx) {
      await ctx.k(['create', 'configmap', 'a', '-n', ctx.ns, '--from-literal=v=1']);
      await ctx.k(['create', 'configmap', 'b', '-n', ctx.ns, '--from-literal=v=2']);
      const change = async () => {
        await ctx.k(['create', 'configmap', 'c', '-n', ctx.ns, '--from-literal=v=3']);
        await ctx.k(['patch', 'configmap', 'c', '-n', ctx.ns, '--type=merge', '-p', '{"data":{"v":"33"}}']);
        await ctx.k(['delete', 'configmap', 'a', '-n', ctx.ns]);
      };
      const lines = ctx.t.name === 'gateway' ? await viaWebSocket(ctx, change, 3) : await viaHttp(ctx, change, 3);
      return lines.join('\n');
    },
  },
];
