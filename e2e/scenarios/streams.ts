// kubectl logs (-f), exec (a command, stdin; WebSocket and SPDY),
// port-forward with bytes through it (WebSocket and SPDY), cp. kwok serves
// them: every container's log is one CRI file the harness appends to, exec
// runs the command on the kwok host (cwd: kwok's exec folder), pod port 8080
// is forwarded to a TCP echo server and port 7 to a `cat` process.
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { check, type Scenario, type Ctx } from '../harness/scenario.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const SPDY = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' };
const PF_SPDY = { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' };

/** Sends `payload` on a TCP connection and reads the same number of bytes back. */
async function echoThrough(port: number, payload: Buffer): Promise<Buffer> {
  const sock = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let got = 0;
  return await new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`port-forward echo: ${got}/${payload.length} bytes after 60 s`));
    }, 60_000);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= payload.length) {
        clearTimeout(timer);
        sock.end();
        resolve(Buffer.concat(chunks));
      }
    });
    sock.on('connect', () => sock.write(payload));
  });
}

async function execScenario(ctx: Ctx, env: Record<string, string>): Promise<string> {
  await ctx.env.pod(ctx.ns, 'box');
  const out: string[] = [];
  const cmd = await ctx.t.kubectl(['exec', 'box', '-n', ctx.ns, '--', 'sh', '-c', 'echo out-line; echo err-line >&2; echo "KWOK=$KWOK"; exit 3'], { env });
  // kwok v0.8.0 reports a failing command as an Internal error naming the status (kubectl exits 1;
  // a kubelet sends the code and kubectl exits 3): see e2e/kwok/README.md
  check(cmd.code !== 0 && /exit status 3|command terminated with exit code 3/.test(cmd.stderr), `exit ${cmd.code}: ${cmd.stderr}`);
  check(cmd.stdout === 'out-line\nKWOK=1\n', `stdout ${JSON.stringify(cmd.stdout)}`);
  check(cmd.stderr.includes('err-line'), `stderr ${JSON.stringify(cmd.stderr)}`);
  out.push(`command: code=${cmd.code} stdout=${JSON.stringify(cmd.stdout)} stderr=${JSON.stringify(cmd.stderr)}`);
  const ok = await ctx.t.kubectl(['exec', 'box', '-n', ctx.ns, '--', 'sh', '-c', 'echo fine'], { env });
  check(ok.code === 0 && ok.stdout === 'fine\n', `exec echo: ${ok.code} ${ok.stderr}`);
  const payload = randomBytes(768 * 1024).toString('base64'); // ~1 MiB of text
  // `head -c N`, not `cat`: kwok v0.8.0 never closes an exec's stdin at EOF; and a short pause before the
  // exit, since kwok can send the exit status before the last of a big stdout over SPDY, on the direct
  // path too (e2e/kwok/README.md). A relay cannot reorder bytes, so the pause hides nothing of ours.
  const echoed = await ctx.t.kubectl(['exec', '-i', 'box', '-n', ctx.ns, '--', 'sh', '-c', `head -c ${String(payload.length)} && sleep 0.3`], {
    env,
    stdin: payload,
    timeoutMs: 120_000,
  });
  check(echoed.code === 0 && echoed.stdout === payload, `stdin echo: code ${echoed.code}, ${echoed.stdout.length}/${payload.length} bytes: ${echoed.stderr}`);
  out.push(`stdin → head -c: ${payload.length} bytes back intact`);
  const hashed = await ctx.t.kubectl(['exec', '-i', 'box', '-n', ctx.ns, '--', 'sh', '-c', `head -c ${payload.length} | sha256sum`], { env, stdin: payload });
  check(hashed.stdout.startsWith(sha(payload)), `sha256sum ${hashed.stdout}`);
  out.push('stdin → sha256sum: matches');
  const missing = await ctx.t.kubectl(['exec', 'box', '-n', ctx.ns, '--', 'no-such-command-e2e'], { env });
  out.push(`missing command: code=${missing.code}`);
  const noPod = await ctx.t.kubectl(['exec', 'nope', '-n', ctx.ns, '--', 'true'], { env });
  out.push(`missing pod: code=${noPod.code} ${noPod.stderr.trim()}`);
  // which protocol kubectl negotiated, from its own debug log
  const v = await ctx.t.kubectl(['exec', 'box', '-n', ctx.ns, '-v=8', '--', 'true'], { env });
  const proto =
    /v5\.channel\.k8s\.io|websocket/i.test(v.stderr) && env.KUBECTL_REMOTE_COMMAND_WEBSOCKETS !== 'false'
      ? 'websocket'
      : /SPDY/i.test(v.stderr)
        ? 'spdy'
        : 'unknown';
  out.push(`protocol: ${proto}`);
  return out.join('\n');
}

async function portForwardScenario(ctx: Ctx, env: Record<string, string>): Promise<string> {
  await ctx.env.pod(ctx.ns, 'fwd');
  const pf = ctx.t.spawnKubectl('port-forward', ['port-forward', '-n', ctx.ns, 'pod/fwd', ':8080', ':7'], { env });
  try {
    const l1 = await pf.waitForLine('Forwarding -> 8080', /Forwarding from 127\.0\.0\.1:\d+ -> 8080/, 30_000);
    const l2 = await pf.waitForLine('Forwarding -> 7', /Forwarding from 127\.0\.0\.1:\d+ -> 7$/, 30_000);
    const p8080 = Number(/127\.0\.0\.1:(\d+)/.exec(l1)?.[1]);
    const p7 = Number(/127\.0\.0\.1:(\d+)/.exec(l2)?.[1]);
    const out: string[] = [];
    const big = randomBytes(2 * 1024 * 1024);
    const back = await echoThrough(p8080, big);
    check(sha(back) === sha(big), `8080: ${back.length} bytes back, hash differs`);
    out.push(`8080 (TCP echo): ${big.length} bytes round trip intact`);
    const parallel = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const b = randomBytes(256 * 1024 + i);
        return sha(await echoThrough(p8080, b)) === sha(b);
      }),
    );
    check(parallel.every(Boolean), 'parallel connections corrupted');
    out.push('8080: 3 parallel connections intact');
    const small = randomBytes(64 * 1024);
    const viaCat = await echoThrough(p7, small);
    check(sha(viaCat) === sha(small), 'port 7 (cat) differs');
    out.push(`7 (cat): ${small.length} bytes intact`);
    check(pf.alive, 'port-forward exited');
    return out.join('\n');
  } finally {
    await pf.stop('SIGINT', 3_000);
  }
}

export const streamScenarios: Scenario[] = [
  {
    name: 'logs: tail, timestamps, limit-bytes, previous',
    group: 'logs/exec/pf/cp',
    async run(ctx) {
      await ctx.env.pod(ctx.ns, 'talker');
      const out = [
        await ctx.k(['logs', 'talker', '-n', ctx.ns, '--tail=2']),
        await ctx.k(['logs', 'pod/talker', '-n', ctx.ns, '-c', 'app', '--limit-bytes=9']),
        await ctx.k(['logs', 'talker', '-n', ctx.ns, '--tail=1', '--timestamps']),
        await ctx.k(['logs', 'talker', '-n', ctx.ns, '--previous', '--tail=1']),
        await ctx.k(['logs', 'nope', '-n', ctx.ns], { expect: 1 }),
      ].join('\n---\n');
      check(out.includes('e2e log line 3'), out);
      return out;
    },
    // the shared log file grows as other scenarios append to it
    normalize: (s) => s.replace(/follow-\S+/g, '<follow>'),
  },
  {
    name: 'logs -f',
    group: 'logs/exec/pf/cp',
    async run(ctx) {
      await ctx.env.pod(ctx.ns, 'follower');
      const f = ctx.t.spawnKubectl('logs-f', ['logs', '-f', 'follower', '-n', ctx.ns]);
      try {
        await f.waitForLine('the existing lines', /e2e log line 3/, 30_000);
        const mark = `follow-${ctx.ns}`;
        ctx.env.cluster.appendLog([`${mark} a`, `${mark} b`]);
        await f.waitForLine('the appended line', (l) => l === `${mark} b`, 30_000);
        ctx.env.cluster.appendLog([`${mark} c`]);
        await f.waitForLine('a later line', (l) => l === `${mark} c`, 30_000);
        check(f.alive, 'logs -f exited');
        return f.lines.filter((l) => l.startsWith('e2e log line') || l.startsWith(mark)).join('\n');
      } finally {
        await f.stop('SIGINT', 3_000);
      }
    },
  },
  { name: 'exec: command and stdin (WebSocket)', group: 'logs/exec/pf/cp', run: (ctx) => execScenario(ctx, {}) },
  { name: 'exec: command and stdin (SPDY)', group: 'logs/exec/pf/cp', run: (ctx) => execScenario(ctx, SPDY) },
  { name: 'port-forward: bytes (WebSocket)', group: 'logs/exec/pf/cp', run: (ctx) => portForwardScenario(ctx, {}) },
  { name: 'port-forward: bytes (SPDY)', group: 'logs/exec/pf/cp', run: (ctx) => portForwardScenario(ctx, PF_SPDY) },
  {
    name: 'cp: to and from a pod',
    group: 'logs/exec/pf/cp',
    async run(ctx) {
      await ctx.env.pod(ctx.ns, 'files');
      // kwok runs exec (and so cp's tar) on the host in its exec folder: pod paths are relative to it.
      await ctx.k(['exec', 'files', '-n', ctx.ns, '--', 'mkdir', '-p', ctx.ns]);
      const local = join(ctx.env.runDir, 'cp', ctx.ns);
      mkdirSync(join(local, 'tree', 'sub'), { recursive: true });
      const content = randomBytes(300 * 1024);
      writeFileSync(join(local, 'blob.bin'), content);
      writeFileSync(join(local, 'tree', 'a.txt'), 'alpha\n');
      writeFileSync(join(local, 'tree', 'sub', 'b.txt'), 'beta\n');
      const out = [
        await ctx.k(['cp', join(local, 'blob.bin'), `${ctx.ns}/files:${ctx.ns}/blob.bin`], { timeoutMs: 120_000 }),
        await ctx.k(['cp', join(local, 'tree'), `${ctx.ns}/files:${ctx.ns}/tree`], { timeoutMs: 120_000 }),
        await ctx.k(['exec', 'files', '-n', ctx.ns, '--', 'sh', '-c', `cd ${ctx.ns} && find . -type f | sort && cat tree/sub/b.txt`]),
        await ctx.k(['cp', `${ctx.ns}/files:${ctx.ns}/blob.bin`, join(local, 'back.bin')], { timeoutMs: 120_000 }),
      ];
      check(existsSync(join(local, 'back.bin')) && sha(readFileSync(join(local, 'back.bin'))) === sha(content), 'copied file differs');
      out.push(`round trip: ${content.length} bytes intact`);
      return out.join('\n');
    },
  },
];
