import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type Forge from 'node-forge';
import { DEFAULT_CLUSTER_ADDRESS_SUFFIX } from '@pipeops/tunnel-protocol';

/** Options of {@link generateDevCertificates}. */
export interface DevCertificateOptions {
  /** Names and IP addresses the server certificate is valid for (subjectAltName), e.g. `['localhost', '127.0.0.1']`. */
  hosts: string[];
  /** Validity of both certificates, in days. Default 30. */
  validityDays?: number;
  /**
   * The gateway's per-cluster address suffix: the certificate also covers
   * `*.<suffix>` (the TLS server names `<cluster>.<suffix>`). Default
   * `'clusters.localhost'` (the gateway's default); `''`: no wildcard.
   */
  clusterAddressSuffix?: string;
}

/** PEM strings: the development CA's certificate, and the server certificate (signed by it) with its key. */
export interface DevCertificates {
  caCert: string;
  cert: string;
  key: string;
}

/**
 * Generates a throw-away certificate authority and a server certificate it
 * signs, for `--dev` and for tests. The server certificate is valid for
 * `hosts` and for the per-cluster addresses `*.<clusterAddressSuffix>`.
 * Clients verify the server with `ca: caCert`; the server uses `cert`/`key`.
 * RSA 2048 keys come from node:crypto; node-forge only assembles and signs
 * the certificates.
 */
export function generateDevCertificates(opts: DevCertificateOptions): DevCertificates {
  if (opts.hosts.length === 0) throw new Error('generateDevCertificates: hosts must not be empty');
  const suffix = opts.clusterAddressSuffix ?? DEFAULT_CLUSTER_ADDRESS_SUFFIX;
  const names = suffix === '' ? opts.hosts : [...opts.hosts, `*.${suffix}`];
  const days = opts.validityDays ?? 30;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);

  // Loaded here: node-forge's ~5 MB of RSS are for `--dev` only.
  const forge = createRequire(import.meta.url)('node-forge') as typeof Forge;
  const caKeys = rsaKeys(forge);
  const ca = forge.pki.createCertificate();
  ca.publicKey = caKeys.publicKey;
  ca.serialNumber = serial();
  ca.validity.notBefore = notBefore;
  ca.validity.notAfter = notAfter;
  const caSubject = [
    { name: 'commonName', value: 'pipeops-tunnel dev CA' },
    { name: 'organizationName', value: 'pipeops-tunnel (development)' },
  ];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const serverKeys = rsaKeys(forge);
  const cert = forge.pki.createCertificate();
  cert.publicKey = serverKeys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject([{ name: 'commonName', value: opts.hosts[0] ?? 'localhost' }]);
  cert.setIssuer(caSubject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: names.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })) },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKeys.privateKey, forge.md.sha256.create());

  return {
    caCert: forge.pki.certificateToPem(ca),
    cert: forge.pki.certificateToPem(cert),
    key: serverKeys.privatePem,
  };
}

function rsaKeys(forge: typeof Forge): { publicKey: Forge.pki.rsa.PublicKey; privateKey: Forge.pki.rsa.PrivateKey; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey),
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    privatePem: privateKey,
  };
}

function serial(): string {
  // Positive 128-bit serial: clear the top bit so DER does not read it as negative.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}
