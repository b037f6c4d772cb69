// The floor of any two-hop design in Node: a hop that terminates TLS from
// the runner's side, opens TLS to the next hop, and pipes bytes between the
// two with `stream.pipe`. It does nothing of its own: no HTTP, no mux, no
// WebSocket, no policy, no logging. Two of them in a row stand where the
// gateway and the agent stand (see lib/node-floor.ts). Run as its own
// process, with the V8 flag the `pipeops-tunnel` launcher sets:
//
//   node --max-semi-space-size=8 tls-relay.ts --next-port N --next-ca FILE --ca-out FILE
//
// trusts `--next-ca` for the next hop, writes its own CA to `--ca-out`,
// prints `READY <port>`; exits when stdin closes.
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { testCertificates } from '@pipeops/tunnel-testkit';

const { values } = parseArgs({ options: { 'next-port': { type: 'string' }, 'next-ca': { type: 'string' }, 'ca-out': { type: 'string' } } });
const [nextPort, nextCa, caOut] = [Number(values['next-port']), values['next-ca'], values['ca-out']];
if (!(nextPort > 0) || nextCa === undefined || caOut === undefined) throw new Error('tls-relay: --next-port, --next-ca and --ca-out are required');

const certs = testCertificates('tls-relay');
writeFileSync(caOut, certs.caCert);
const ca = readFileSync(nextCa);
const server = tls.createServer({ key: certs.key, cert: certs.cert }, (near) => {
  const far = tls.connect({ port: nextPort, host: '127.0.0.1', ca, servername: 'localhost' });
  near.pipe(far).pipe(near);
  near.on('error', () => far.destroy());
  far.on('error', () => near.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
