export { createAgent } from './agent.ts';
export type { Agent, AgentDeps } from './agent.ts';
export { defaultAgentOptions, verifyAgentOptions, tunnelUrlFromApiUrl } from './config.ts';
export type { AgentOptions, KubernetesOptions, ProxyOptions, ReconnectOptions, ReadinessCheck, StatusExtras, StatusProvider } from './config.ts';
export { AgentError, agentErrorCodes } from './errors.ts';
export type { AgentErrorCode } from './errors.ts';
export type { AgentState, FailureReason, StreamResult } from './metrics.ts';
export type { Readiness } from './health-server.ts';
export { pingHandler } from './streams.ts';
export type { StreamHandler, StreamContext } from './streams.ts';
export { bypassesProxy } from './proxy.ts';
export { kubeconfigProblem } from './kube/kubeconfig.ts';
export type { AuditOptions } from './config.ts';
export { defaultAgentPolicy, evaluatePolicy, policySummary, verifyAgentPolicy } from './kube/policy.ts';
export type { AgentPolicy, PolicyDecision, PolicyRule } from './kube/policy.ts';
export { ACCESS_AS_VALUES, RUNNERS_GROUP, runnerUserName } from './kube/admission.ts';
export type { AccessAs } from './kube/admission.ts';
/**
 * The agent's API-server credentials, loaded exactly as the agent loads them
 * (service account, kubeconfig, exec plugins, token files): for tools that
 * must act with the agent's identity, such as `pipeops-tunnel doctor`.
 */
export { loadKubeCredentials, NOT_CONFIGURED } from './kube/credentials.ts';
export type { KubeCredentials, KubeCredentialsOptions, KubeTlsOptions, ResolvedCredentials } from './kube/credentials.ts';
/** Which outbound proxy the agent's dial uses for a URL (`HTTPS_PROXY`/`NO_PROXY` rules), and a proxy URL fit for logs. */
export { proxyForTarget, redactProxyUrl } from './proxy.ts';
/** The trust store of the agent's dial with `tls.caFile`: Node's default CAs plus the file's. */
export { loadCaTrust } from './dial.ts';
export type { CaTrust } from './dial.ts';
