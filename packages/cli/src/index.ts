export { main } from './main.ts';
export { ExitCode, CliError, cliErrorCodes, exitCodeFor, type CliErrorCode } from './errors.ts';
export { agentSchema, loadAgentConfig, toAgentOptions, type AgentConfig, type ConnectFlags } from './agent-config.ts';
export { gatewaySchema, loadGatewayConfig, type GatewayConfig, type GatewayFlags } from './gateway-config.ts';
export { parseDurationMs } from './duration.ts';
export { proxyFromEnv } from './proxy-env.ts';
export type { CliIo } from './io.ts';
