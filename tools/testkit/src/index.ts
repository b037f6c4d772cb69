export { testCertificates, writeCaFile, type TestCertificates } from './certificates.ts';
export { blobChunks, blobSha256, blobStream, BLOB_CHUNK_BYTES } from './blob.ts';
export {
  startFakeApiServer,
  type FakeApiServer,
  type FakeApiServerOptions,
  type RecordedRequest,
  type AbortedRequest,
  type AbortRecord,
} from './fake-apiserver.ts';
export type { WatchControl, LogsControl } from './fake-apiserver-feeds.ts';
export { FAKE_LIST_RESOURCE_VERSION, type ExpiredAnswer } from './fake-apiserver-history.ts';
export {
  FAKE_GIT_VERSION,
  FAKE_POD_NAMES,
  FAKE_LOG_LINES,
  FAKE_ETAG,
  FAKE_WARNINGS,
  FAKE_COOKIES,
  FAKE_HEADER_COUNT,
  FAKE_TRAILER_CHUNKS,
  statusBody,
  type FakeApiServerStats,
} from './fake-apiserver-routes.ts';
export { FAKE_WS_PROTOCOLS, FAKE_SPDY_BYE } from './fake-apiserver-upgrade.ts';
export { startCanaryServer, type CanaryServer, type CanaryHit } from './canary-server.ts';
export { kubeconfigFor, kubectl, kubectlClientVersion, kubectlRawPath, type KubeconfigSpec, type KubectlOptions, type KubectlResult } from './kubectl.ts';
export { collectLogs, type LogCollector, type LogRecord } from './collect-logs.ts';
export { waitFor, type WaitForOptions } from './wait-for.ts';
export {
  startKubePath,
  testAgentOptions,
  KUBE_PATH,
  type KubePath,
  type KubePathOptions,
  type KubePathAgent,
  type KubePathAgentOptions,
} from './kube-path.ts';
export { startRedisServer, redisServerBinary, type RedisServer } from './redis-server.ts';
export { startHaproxy, haproxyBinary, type Haproxy, type HaproxyOptions } from './haproxy.ts';
export { freePort } from './free-port.ts';
export {
  setFakeRbac,
  FAKE_RBAC_ALL,
  type FakeRbacRules,
  type FakeResourceRule,
  type FakeNonResourceRule,
} from './fake-apiserver-rbac.ts';
export { FUZZ_RUNS, fuzzParameters, isCodedError } from './fuzz.ts';
export { spawnLogged, type LoggedProcess } from './logged-process.ts';
export { activeStreams, assertStreamInvariant, streamAccounting, type StreamCounts } from './stream-accounting.ts';
