// A test double of the agent (the real one is packages/agent, tested against
// this gateway by its own suite): mux client session + control channel +
// a `ping` stream echo, built from the mux and protocol packages directly.
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { createSession, type Session } from '@pipeops/tunnel-mux';
import {
  AgentHeaders,
  ControlChannel,
  SUBPROTOCOL,
  TUNNEL_PATH,
  readPreamble,
  websocketDuplex,
  type ControlMessage,
  type HelloMessage,
  type StreamPreamble,
  type WelcomeMessage,
} from '@pipeops/tunnel-protocol';

type After = { after(fn: () => Promise<void> | void): void };

export interface FakeAgentOptions {
  wsUrl: string;
  ca: string;
  token?: string;
  cluster?: string;
  subprotocol?: string;
  hello?: Partial<HelloMessage>;
  /** Send hello and wait for welcome. Default true. */
  handshake?: boolean;
  /** Hold each ping stream open until this resolves before echoing (for in-flight tests). */
  holdPing?: () => Promise<void>;
}

export interface FakeAgent {
  ws: WebSocket;
  session: Session;
  control: ControlChannel;
  welcome: WelcomeMessage | undefined;
  /** Control messages received from the gateway. */
  messages: ControlMessage[];
  /** GoAway codes received. */
  goAways: number[];
  /** Preambles of the data streams the gateway opened. */
  preambles: StreamPreamble[];
  closed: Promise<void>;
}

/** Opens a raw agent WebSocket; resolves on 'open' or rejects with the HTTP status of a refused upgrade. */
export function dialAgentSocket(o: FakeAgentOptions): Promise<WebSocket> {
  const headers: Record<string, string> = {};
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  if (o.cluster !== undefined) headers[AgentHeaders.cluster] = o.cluster;
  headers[AgentHeaders.agentId] = 'fake-agent';
  const ws = new WebSocket(`${o.wsUrl}${TUNNEL_PATH}`, o.subprotocol ?? SUBPROTOCOL, { ca: o.ca, headers, perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const err = Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body: Buffer.concat(chunks).toString() });
        ws.terminate();
        reject(err);
      });
    });
    ws.once('error', reject);
  });
}

/** Connects a fake agent (TLS, mux, control, hello/welcome); torn down by t.after(). */
export async function connectFakeAgent(t: After, o: FakeAgentOptions): Promise<FakeAgent> {
  const ws = await dialAgentSocket(o);
  const session = createSession(websocketDuplex(ws), { client: true, keepAliveIntervalMs: 0 });
  session.on('error', () => {});
  const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
  t.after(async () => {
    session.destroy();
    ws.terminate();
    await closed;
  });
  const messages: ControlMessage[] = [];
  const goAways: number[] = [];
  const preambles: StreamPreamble[] = [];
  session.on('goaway', (code: number) => goAways.push(code));
  session.on('stream', (stream: Duplex) => {
    stream.on('error', () => {});
    readPreamble(stream).then(
      async (p) => {
        preambles.push(p);
        if (p.kind !== 'ping') {
          stream.destroy();
          return;
        }
        if (o.holdPing) await o.holdPing();
        stream.pipe(stream);
      },
      () => stream.destroy(),
    );
  });
  const control = new ControlChannel(session.open());
  control.on('error', () => {});
  control.on('message', (m) => messages.push(m));
  const agent: FakeAgent = { ws, session, control, welcome: undefined, messages, goAways, preambles, closed };
  if (o.handshake === false) return agent;
  control.send({
    type: 'hello',
    agentId: 'fake-agent',
    name: 'fake',
    clusterName: o.cluster ?? '',
    version: '0.0.0-test',
    labels: { env: 'test' },
    protocolVersion: 1,
    ...o.hello,
  } as HelloMessage);
  agent.welcome = (await nextMessage(control, 'welcome')) as WelcomeMessage;
  return agent;
}

/** Resolves with the next control message of `type`. */
export function nextMessage(control: ControlChannel, type: ControlMessage['type']): Promise<ControlMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: ControlMessage): void => {
      if (m.type === type) {
        cleanup();
        resolve(m);
      }
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error(`control closed before ${type}`));
    };
    const cleanup = (): void => {
      control.off('message', onMessage);
      control.off('close', onClose);
    };
    control.on('message', onMessage);
    control.on('close', onClose);
  });
}

/** Writes `data` into a ping stream and resolves with what comes back. */
export async function pingEcho(stream: Duplex, data: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.end(data);
  await once(stream, 'end');
  return Buffer.concat(chunks);
}
