import { generateDevCertificates } from '@pipeops/tunnel-gateway';
import type { DevCertificates } from '@pipeops/tunnel-gateway';

let cached: DevCertificates | undefined;

/** A throw-away CA and a server certificate for 127.0.0.1/localhost, generated once per test file. */
export function testCerts(): DevCertificates {
  cached ??= generateDevCertificates({ hosts: ['127.0.0.1', 'localhost'] });
  return cached;
}
