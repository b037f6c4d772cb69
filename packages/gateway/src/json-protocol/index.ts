export { createJsonProtocolEndpoint } from './endpoint.ts';
export type { JsonProtocolEndpoint, JsonProtocolStats } from './endpoint.ts';
export type { RunnerContext } from './connection.ts';
export { defaultJsonProtocolLimits } from './config.ts';
export type { JsonProtocolDeps, JsonProtocolPreamble } from './config.ts';
export { jsonProtocolErrorCodes } from './errors.ts';
export type { JsonProtocolErrorCode } from './errors.ts';
export { REQUEST_ID_HEADER } from '../forward/request-id.ts';
