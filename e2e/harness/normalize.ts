// Volatile fields removed before outputs of the three targets are compared:
// the namespace (each target works in its own), server URLs and local ports,
// timestamps and ages, resourceVersions, uids, continue tokens, IPs, request
// ids.
export function normalize(text: string, ns: string): string {
  let s = text;
  if (ns !== '') s = s.replaceAll(ns, '<ns>');
  return (
    s
      // published into every namespace by kube-controller-manager, a moment after the namespace exists
      .replace(/^.*kube-root-ca\.crt.*\n?/gm, '')
      .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})/g, '<time>')
      .replace(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? [+-]\d{4}( [A-Z]{2,5}\b)?/g, '<time>')
      .replace(/\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}/g, '<time>')
      .replace(/("resourceVersion":\s*)"\d+"/g, '$1"<rv>"')
      .replace(/(resourceVersion:\s*)"?\d+"?/g, '$1<rv>')
      .replace(/("continue":\s*)"[^"]+"/g, '$1"<continue>"')
      .replace(/(continue:\s*)\S+/g, '$1<continue>')
      .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '<uuid>')
      .replace(/https?:\/\/127\.0\.0\.1:\d+(\/k8s\/clusters\/[\w.-]+)?/g, '<server>')
      .replace(/127\.0\.0\.1:\d+/g, '<addr>')
      .replace(/\b10\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g, '<ip>')
      .replace(/\b\d+(ms|s|m|h|d)(\d+(s|m|h))?\b/g, '<age>')
      // table and describe columns are as wide as their widest value (ages, names): align-free
      .replace(/(\S) {2,}/g, '$1  ')
      .replace(/[ \t]+$/gm, '')
  );
}

/** A unified-ish diff of two texts (the first lines that differ), for a mismatch report. */
export function firstDifference(a: string, b: string, context = 2): string {
  const la = a.split('\n');
  const lb = b.split('\n');
  const n = Math.max(la.length, lb.length);
  for (let i = 0; i < n; i++) {
    if (la[i] !== lb[i]) {
      const from = Math.max(0, i - context);
      const out: string[] = [`line ${i + 1}:`];
      for (let j = from; j < i; j++) out.push(`    ${la[j] ?? ''}`);
      for (let j = i; j < Math.min(n, i + context + 1); j++) {
        if (la[j] !== lb[j]) {
          out.push(`  - ${la[j] ?? '<none>'}`);
          out.push(`  + ${lb[j] ?? '<none>'}`);
        } else out.push(`    ${la[j] ?? ''}`);
      }
      return out.join('\n');
    }
  }
  return '(identical)';
}

import { parse, stringify } from 'yaml';

// (kubesim's controller-manager child reports its manager name as `kubesim`, its argv[0])
const CONTROLLER_MANAGERS = /^(kube-controller-manager|kube-scheduler|kubesim|kwok.*|kubelet)$/;

/**
 * `kubectl get -o yaml` output without what controllers write on their own
 * schedule (kube-controller-manager runs in kubesim): `status`, the
 * deployment revision annotation, and managedFields entries of controllers.
 */
export function stableYaml(text: string): string {
  const doc = parse(text) as Record<string, unknown>;
  const clean = (o: Record<string, unknown>) => {
    delete o.status;
    const md = o.metadata as { annotations?: Record<string, string>; managedFields?: Array<{ manager?: string }> } | undefined;
    if (md?.annotations) {
      delete md.annotations['deployment.kubernetes.io/revision'];
      if (Object.keys(md.annotations).length === 0) delete md.annotations;
    }
    if (md?.managedFields)
      md.managedFields = md.managedFields.filter((f) => !CONTROLLER_MANAGERS.test(f.manager ?? '') && (f as { subresource?: string }).subresource !== 'status');
  };
  if (Array.isArray(doc.items)) for (const i of doc.items as Array<Record<string, unknown>>) clean(i);
  else clean(doc);
  return stringify(doc);
}
