// A tokens reload cuts the runners it revoked: their /ws/runner sessions and
// /ws/k8s sockets close (1008 "runner token revoked"), in-flight requests on
// them end, and runners that kept their access stay connected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import { SUBPROTOCOL, requestOverStream, websocketDuplex } from '@pipeops/tunnel-protocol';
import { FAKE_GIT_VERSION, waitFor } from '@pipeops/tunnel-testkit';
import type { GatewayOptions } from '../src/index.ts';
import { T } from './helpers/gateway.ts';
import { startRunnerRig, type RunnerRig } from './runner-helpers/rig.ts';

const MOVED = 'runner-token-moved-0123456789';

/** A tokens file: agent c1, and the given runners (id, token, clusters). */
function tokensYaml(runners: [string, string, string[]][]): string {
  return `agents:\n  - cluster: c1\n    token: "${T.agentC1}"\nrunners:\n${runners
    .map(([id, token, clusters]) => `  - id: ${id}\n    token: "${token}"\n    clusters: [${clusters.map((c) => JSON.stringify(c)).join(', ')}]\n`)
    .join('')}`;
}

type After = { after(fn: () => unknown): void };

/** Opens a WebSocket to the gateway with a runner token; resolves once open. */
async function openWs(rig: RunnerRig, t: After, path: string, token: string, protocols: string[] = []): Promise<WebSocket> {
  const ws = new WebSocket(`${rig.gw.wsUrl}${path}`, protocols, { ca: rig.gw.ca, headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  return ws;
}

/** A /ws/runner session (mux client over the WebSocket), as tunnel-client opens it. */
async function runnerSession(rig: RunnerRig, t: After, token: string): Promise<{ ws: WebSocket; session: Session; closed: Promise<[number, string]> }> {
  const ws = await openWs(rig, t, '/ws/runner?runner_id=rv&cluster=c1', token, [SUBPROTOCOL]);
  const closed = once(ws, 'close').then(([code, reason]) => [code as number, String(reason)] as [number, string]);
  const session = createSession(websocketDuplex(ws), { client: true, keepAliveIntervalMs: 0 });
  session.on('error', () => {});
  t.after(() => session.destroy());
  return { ws, session, closed };
}

async function version(session: Session): Promise<number> {
  const answer = await requestOverStream(session.open(), { method: 'GET', path: '/version', headers: { host: 'cluster' } });
  assert.equal(answer.upgraded, false);
  let text = '';
  for await (const c of answer.response) text += String(c);
  assert.equal((JSON.parse(text) as { gitVersion: string }).gitVersion, FAKE_GIT_VERSION);
  return answer.response.statusCode ?? 0;
}

test('a tokens reload closes the sessions and sockets of revoked runners and keeps the others', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gw-revoke-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens.yaml');
  await writeFile(
    file,
    tokensYaml([
      ['r1', T.runnerC1, ['c1']],
      ['r-moved', MOVED, ['c1']],
      ['r-all', T.runnerAll, ['*']],
    ]),
  );
  // The tokens come from the file only (the rig's inline tokens are switched off); a long debounce:
  // the test reloads explicitly, so the file watcher cannot race it.
  const fromFile = { tokensFile: file, tokensReloadDebounceMs: 60_000, tokens: undefined } as unknown as Partial<GatewayOptions>;
  const rig = await startRunnerRig(t, fromFile);

  const revoked = await runnerSession(rig, t, T.runnerC1);
  const moved = await runnerSession(rig, t, MOVED);
  const kept = await runnerSession(rig, t, T.runnerAll);
  const revokedJson = await openWs(rig, t, '/ws/k8s?cluster=c1', T.runnerC1);
  const revokedJsonClosed = once(revokedJson, 'close');
  const keptJson = await openWs(rig, t, '/ws/k8s?cluster=c1', T.runnerAll);
  for (const s of [revoked, moved, kept]) assert.equal(await version(s.session), 200);

  // An open WATCH on the revoked session: it must end with the session.
  const watch = await requestOverStream(revoked.session.open(), {
    method: 'GET',
    path: '/api/v1/namespaces/default/pods?watch=1',
    headers: { host: 'cluster' },
  });
  assert.equal(watch.upgraded, false);
  watch.response.on('error', () => {});
  await rig.fake.watch.waitForWatchers(1);

  // r1 removed; r-moved now reaches c2 only; r-all unchanged.
  await writeFile(
    file,
    tokensYaml([
      ['r-moved', MOVED, ['c2']],
      ['r-all', T.runnerAll, ['*']],
    ]),
  );
  await rig.gw.gateway.reloadTokens();

  assert.deepEqual(await revoked.closed, [1008, 'runner token revoked']);
  assert.deepEqual(await moved.closed, [1008, 'runner token revoked']);
  const [jsonCode, jsonReason] = (await revokedJsonClosed) as [number, Buffer];
  assert.deepEqual([jsonCode, String(jsonReason)], [1008, 'runner token revoked']);
  await waitFor(() => rig.fake.watch.active === 0, { what: "the revoked session's WATCH to be aborted upstream" });
  const revokedLogs = rig.gw.log.records().filter((r) => r.event === 'runner_revoked');
  assert.deepEqual(revokedLogs.map((r) => `${String(r.runnerId)}:${r.route === 'ws-k8s' ? 'ws-k8s' : 'ws-runner'}`).sort(), [
    'r-moved:ws-runner',
    'r1:ws-k8s',
    'r1:ws-runner',
  ]);

  // The runner that kept its access is untouched: same session and socket, still served.
  assert.equal(kept.ws.readyState, WebSocket.OPEN);
  assert.equal(await version(kept.session), 200);
  assert.equal(keptJson.readyState, WebSocket.OPEN);
  keptJson.send(JSON.stringify({ id: 'after-reload', method: 'GET', path: '/version' }));
  const [reply] = (await once(keptJson, 'message')) as [Buffer];
  assert.deepEqual(
    [(JSON.parse(String(reply)) as { id: string; status: number }).id, (JSON.parse(String(reply)) as { status: number }).status],
    ['after-reload', 200],
  );
});
