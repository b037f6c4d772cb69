import { afterOutput, auditRecord, NO_AUDIT_TARGET, type AuditDenyRule } from '@pipeops/tunnel-protocol';
import type { Exchange, ExchangeResult, KubeProxyOptions } from './exchange.ts';

/** Writes the exchange's one audit record and its metrics (once), after this turn's output (see afterOutput). */
export function recordExchange(ex: Exchange, r: ExchangeResult, o: Pick<KubeProxyOptions, 'metrics' | 'audit'>): void {
  if (ex.recorded) return;
  ex.recorded = true;
  const ms = performance.now() - ex.started;
  afterOutput(() => writeRecord(ex, r, o, ms));
}

function writeRecord(ex: Exchange, r: ExchangeResult, o: Pick<KubeProxyOptions, 'metrics' | 'audit'>, ms: number): void {
  o.metrics.observe(r.verb, r.status, ms / 1000);
  if (r.rule !== undefined) o.metrics.denied(r.rule);
  const p = ex.preamble;
  o.audit.write(
    auditRecord({
      side: 'agent',
      time: ex.time,
      requestId: p.requestId,
      runnerId: p.runnerId ?? null,
      cluster: p.cluster ?? null,
      method: r.method,
      target: r.path,
      info: r.target ?? NO_AUDIT_TARGET,
      status: r.status ?? null,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
      ms: Math.round(ms),
      upgraded: r.upgraded,
      rule: r.rule,
      error: r.error === undefined ? undefined : ((r.error as Error).message ?? String(r.error)),
    }),
    r.status !== undefined && r.status >= 500 ? 'warn' : 'info',
  );
}

/** Sets what a refusal answered (its status, error and rule) on the exchange's figures. */
export function refusedWith(result: ExchangeResult, refusal: { code: number; rule?: AuditDenyRule | undefined; error?: unknown }): void {
  result.status = refusal.code;
  if (refusal.error !== undefined) result.error = refusal.error;
  if (refusal.rule !== undefined) result.rule = refusal.rule;
}
