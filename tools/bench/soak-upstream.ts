// The soak's upstream: the testkit's fake kube-apiserver (every shape of
// exchange the tunnel carries: objects, big bodies both ways, chunked with
// trailers, WATCH, followed logs, exec and port-forward upgrades) as its own
// process, so the soak's runner and the API server do not share an event
// loop. Run as:
//
//   node soak-upstream.ts --dir DIR
//
// writes DIR/soak-upstream-ca.pem and prints `READY {"url","caFile","token"}`;
// exits when stdin closes. Every open WATCH gets an event, and every log
// follower a line, every EMIT_MS, so those streams carry data while they run;
// every END_EVERY_MS all of them are ended by the server (as kube-apiserver
// ends a WATCH at its timeout), so some streams end at the far side.
// The fake's request records are dropped as they come: the soak makes 100,000.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startFakeApiServer } from '@pipeops/tunnel-testkit';

const EMIT_MS = 100;
const END_EVERY_MS = 3_000;

const { values } = parseArgs({ options: { dir: { type: 'string' } } });
if (values.dir === undefined) throw new Error('soak-upstream: --dir is required');

const fake = await startFakeApiServer();
const caFile = join(values.dir, 'soak-upstream-ca.pem');
writeFileSync(caFile, fake.caCert);
let seq = 0;
setInterval(() => {
  seq++;
  fake.watch.emit({ kind: 'Pod', apiVersion: 'v1', metadata: { name: 'web-0', namespace: 'default', resourceVersion: String(1000 + seq) } }, 'MODIFIED');
  fake.logs.write(`soak line ${seq}`);
  if (seq % (END_EVERY_MS / EMIT_MS) === 0) {
    fake.watch.end();
    fake.logs.end();
  }
  fake.requests.splice(0);
  (fake.aborted.entries as unknown[]).splice(0);
}, EMIT_MS);
process.stdout.write(`READY ${JSON.stringify({ url: fake.url, caFile, token: fake.token })}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
