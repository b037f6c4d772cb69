// The stream accounting a gateway or an agent exposes on /metrics, per kind:
// `pipeops_tunnel_streams_opened_total{kind}` (opened),
// `pipeops_tunnel_streams_total{kind,result}` summed over results (closed)
// and `pipeops_tunnel_streams_active{kind}` (active). The invariant
// opened = closed + active holds at every scrape of a correct process.
import { request, type Dispatcher } from 'undici';

export interface KindAccounting {
  opened: number;
  closed: number;
  active: number;
  /** closed, by result (ok, reset, error, refused). */
  results: Record<string, number>;
}

/** Per kind, from a Prometheus text exposition. */
export function parseStreamAccounting(text: string): Map<string, KindAccounting> {
  const out = new Map<string, KindAccounting>();
  const entry = (kind: string): KindAccounting => {
    let e = out.get(kind);
    if (e === undefined) {
      e = { opened: 0, closed: 0, active: 0, results: {} };
      out.set(kind, e);
    }
    return e;
  };
  for (const line of text.split('\n')) {
    const m = /^(pipeops_tunnel_streams_(?:opened_total|total|active))\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null) continue;
    const [, name = '', labelText = '', valueText = ''] = m;
    const labels = Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1] ?? '', l[2] ?? '']));
    const kind = labels.kind;
    if (kind === undefined) continue;
    const value = Number(valueText);
    const e = entry(kind);
    if (name === 'pipeops_tunnel_streams_opened_total') e.opened += value;
    else if (name === 'pipeops_tunnel_streams_active') e.active += value;
    else {
      e.closed += value;
      const result = labels.result ?? '';
      e.results[result] = (e.results[result] ?? 0) + value;
    }
  }
  return out;
}

/** GET `url` (a /metrics endpoint) and parse its stream accounting. */
export async function scrapeStreamAccounting(url: string, dispatcher?: Dispatcher): Promise<Map<string, KindAccounting>> {
  const res = await request(url, dispatcher === undefined ? {} : { dispatcher });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  if (!text.includes('pipeops_tunnel_streams_opened_total'))
    throw new Error(`${url}: no pipeops_tunnel_streams_opened_total (a build without stream accounting?)`);
  return parseStreamAccounting(text);
}

/** The kinds whose numbers break opened = closed + active, or (with `idle`) have streams still active; as readable lines. */
export function accountingProblems(side: string, a: Map<string, KindAccounting>, idle: boolean): string[] {
  const problems: string[] = [];
  for (const [kind, n] of a) {
    if (n.opened !== n.closed + n.active) problems.push(`${side} ${kind}: opened ${n.opened} ≠ closed ${n.closed} + active ${n.active}`);
    if (idle && n.active !== 0) problems.push(`${side} ${kind}: ${n.active} streams still active after quiet`);
  }
  return problems;
}
