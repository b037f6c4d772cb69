// chisel (github.com/jpillora/chisel), the reference peer: a reverse TCP
// tunnel over SSH over a WebSocket, TLS on the WebSocket as we use it. Built
// from the Go module pinned in ../peers/go.mod into ../.cache/bin/chisel on
// first use; nothing of it is committed but that pin.
//
// As a reverse tunnel it has the same shape as ours: the chisel client runs
// next to the upstream (where our agent runs) and dials out to the chisel
// server (where our gateway runs), which then listens on a port the runner
// connects to. The runner's TLS goes end to end to the upstream.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { testCertificates, waitFor } from '@pipeops/tunnel-testkit';

const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
const PEERS_DIR = join(BENCH_DIR, 'peers');
export const CHISEL_BIN = join(BENCH_DIR, '.cache', 'bin', 'chisel');
export const CHISEL_VERSION = 'v1.11.3';

/**
 * Builds chisel if it is not built yet. Returns the binary's path, or null
 * (with the reason on stderr) when Go or the module is not available: the
 * peer column is then empty, the rest of the benchmark still runs.
 */
export async function buildChisel(): Promise<string | null> {
  if (existsSync(CHISEL_BIN)) return CHISEL_BIN;
  process.stderr.write(`building chisel ${CHISEL_VERSION} (reference peer; first time only, ~1–2 min) …\n`);
  mkdirSync(dirname(CHISEL_BIN), { recursive: true });
  try {
    await promisify(execFile)('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', CHISEL_BIN, 'github.com/jpillora/chisel'], {
      cwd: PEERS_DIR,
      env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local' },
      maxBuffer: 16 * 1024 * 1024,
    });
    return CHISEL_BIN;
  } catch (err) {
    process.stderr.write(`chisel build failed, no peer figures: ${(err as Error).message}\n`);
    return null;
  }
}

export interface ChiselPeer {
  /** The port on 127.0.0.1 the chisel server forwards to the upstream. */
  port: number;
  serverPid: number;
  clientPid: number;
  close(): Promise<void>;
}

/** A free port on 127.0.0.1 (bound to port 0 and released: chisel needs the number up front). */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves once `port` on 127.0.0.1 accepts a connection and passes it on (the reverse tunnel is up). */
function untilForwarding(port: number, timeoutMs: number): Promise<boolean> {
  return waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = tcpConnect({ host: '127.0.0.1', port });
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    { what: `chisel's reverse port ${port}`, timeoutMs, intervalMs: 50 },
  );
}

/** Starts chisel server (TLS) and chisel client (reverse remote to the upstream); null when chisel is not available. */
export async function startChisel(o: { dir: string; upstreamPort: number }): Promise<ChiselPeer | null> {
  const bin = await buildChisel();
  if (bin === null) return null;
  const certs = testCertificates('bench-chisel');
  const tlsDir = join(o.dir, 'chisel');
  mkdirSync(tlsDir, { recursive: true });
  writeFileSync(join(tlsDir, 'key.pem'), certs.key, { mode: 0o600 });
  writeFileSync(join(tlsDir, 'cert.pem'), certs.cert);
  writeFileSync(join(tlsDir, 'ca.pem'), certs.caCert);
  const [serverPort, reversePort] = [await freePort(), await freePort()];
  const auth = 'bench:chisel-peer-password';
  const server = spawn(
    bin,
    [
      'server',
      '--host',
      '127.0.0.1',
      '--port',
      String(serverPort),
      '--reverse',
      '--tls-key',
      join(tlsDir, 'key.pem'),
      '--tls-cert',
      join(tlsDir, 'cert.pem'),
      '--auth',
      auth,
    ],
    { stdio: 'ignore' },
  );
  const client = spawn(
    bin,
    ['client', '--tls-ca', join(tlsDir, 'ca.pem'), '--auth', auth, `https://127.0.0.1:${serverPort}`, `R:127.0.0.1:${reversePort}:127.0.0.1:${o.upstreamPort}`],
    { stdio: 'ignore' },
  );
  const close = async (): Promise<void> => {
    for (const child of [client, server]) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const gone = once(child, 'exit');
      child.kill('SIGTERM');
      await gone;
    }
  };
  try {
    await untilForwarding(reversePort, 20_000);
  } catch (err) {
    await close();
    throw err;
  }
  return { port: reversePort, serverPid: server.pid!, clientPid: client.pid!, close };
}
