import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateDevCertificates, type DevCertificates } from '@pipeops/tunnel-gateway';

/** PEM strings: a throw-away CA, and a server certificate (valid for `127.0.0.1` and `localhost`) it signs, with its key. */
export type TestCertificates = DevCertificates;

const memo = new Map<string, TestCertificates>();

/**
 * A CA and a server certificate/key for `127.0.0.1` and `localhost`, made
 * once per process and per `name` (RSA key generation costs ~100 ms).
 * Different names give different CAs, so a test can prove a client trusts
 * one server's CA and not another's: the fake API server uses `'apiserver'`,
 * everything else defaults to `'default'`.
 */
export function testCertificates(name = 'default'): TestCertificates {
  let certs = memo.get(name);
  if (certs === undefined) {
    certs = generateDevCertificates({ hosts: ['127.0.0.1', 'localhost'] });
    memo.set(name, certs);
  }
  return certs;
}

/** Writes `certs.caCert` (default: {@link testCertificates}`()`) to `dir/<fileName>` and returns the file's path. */
export function writeCaFile(dir: string, certs: TestCertificates = testCertificates(), fileName = 'ca.pem'): string {
  const file = join(dir, fileName);
  writeFileSync(file, certs.caCert);
  return file;
}
