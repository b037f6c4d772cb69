// A runner reaching a cluster through pipeops-tunnel: list pods, watch them,
// exec a command, stream logs. The TypeScript counterpart of the original VM
// agent's examples/runner_client.go.
//
//   GATEWAY_URL=https://127.0.0.1:8443 RUNNER_TOKEN=… CLUSTER=c1 [CA_FILE=dev-ca.pem] \
//   [NAMESPACE=default] [POD=name] [CONTAINER=name] node examples/runner-client.ts
import { readFileSync } from 'node:fs';
import { CoreV1Api, Exec, Log, type V1Status } from '@kubernetes/client-node';
import { connect } from '@pipeops/tunnel-client';

function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    console.error(`${name} is required (GATEWAY_URL, RUNNER_TOKEN, CLUSTER; optional CA_FILE, NAMESPACE, POD, CONTAINER)`);
    process.exit(2);
  }
  return v;
}

const caFile = process.env.CA_FILE;
const namespace = env('NAMESPACE', 'default');
const tunnel = await connect({
  gatewayUrl: env('GATEWAY_URL'),
  token: env('RUNNER_TOKEN'),
  cluster: env('CLUSTER'),
  runnerId: 'example-runner',
  ...(caFile !== undefined ? { ca: readFileSync(caFile, 'utf8') } : {}),
});

try {
  // 1. The JSON message shape of the original agent: GET /version.
  const version = await tunnel.request({ id: 'version-1', method: 'GET', path: '/version' });
  console.log(`[${version.id}] ${version.status} API server ${(version.body as { gitVersion?: string }).gitVersion ?? '?'}`);

  // 2. List pods with @kubernetes/client-node through the tunnel.
  const kc = tunnel.kubeConfig();
  const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace });
  console.log(
    `pods in ${namespace}:`,
    pods.items.map((p) => `${p.metadata?.name} (${p.status?.phase ?? '?'})`),
  );

  // 3. Watch pods for a few seconds (or until 5 events), from the list's resourceVersion.
  const stop = AbortSignal.timeout(5_000);
  let seen = 0;
  try {
    for await (const ev of tunnel.watch<{ metadata: { name: string } }>(`/api/v1/namespaces/${namespace}/pods`, {
      ...(pods.metadata?.resourceVersion !== undefined ? { resourceVersion: pods.metadata.resourceVersion } : {}),
      signal: stop,
    })) {
      console.log(`watch: ${ev.type} ${ev.object.metadata.name}`);
      if (++seen === 5) break;
    }
  } catch (err) {
    if (!stop.aborted) throw err;
  }

  const pod = process.env.POD ?? pods.items[0]?.metadata?.name;
  const container = process.env.CONTAINER ?? pods.items.find((p) => p.metadata?.name === pod)?.spec?.containers[0]?.name ?? '';
  if (pod === undefined) {
    console.log('no pod to exec into or read logs from');
  } else {
    // 4. Exec a command (a WebSocket upgrade carried by a tunnel stream).
    const status = await new Promise<V1Status>((resolve, reject) => {
      new Exec(kc)
        .exec(namespace, pod, container, ['sh', '-c', 'echo hello from $(hostname)'], process.stdout, process.stderr, null, false, resolve)
        .catch(reject);
    });
    console.log(`exec: ${status.status ?? '?'}`);

    // 5. Stream the last lines of its logs, following for a few seconds.
    const logs = await tunnel.request({
      method: 'GET',
      path: `/api/v1/namespaces/${namespace}/pods/${pod}/log`,
      query: { follow: ['true'], tailLines: ['10'], container: [container] },
      stream: true,
    });
    const timer = setTimeout(() => logs.cancel(), 5_000);
    for await (const line of logs) console.log(`log: ${String(line)}`);
    clearTimeout(timer);
    // The same through client-node's Log (kept short: no follow).
    await new Log(kc).log(namespace, pod, container, process.stdout, { tailLines: 3 });
  }
} finally {
  await tunnel.close();
}
