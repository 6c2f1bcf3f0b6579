/**
 * A self-signed certificate for a local HTTPS stand-in (valid for localhost and 127.0.0.1 for a week), written to a
 * temporary PEM file so clients can trust it (COSMOS_CA_CERT_PATH, NODE_EXTRA_CA_CERTS).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface LocalCertificate {
  cert: string;
  key: string;
  path: string;
}

export async function generateLocalCertificate(name: string): Promise<LocalCertificate> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 7 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  const path = join(mkdtempSync(join(tmpdir(), `${name}-`)), 'cert.pem');
  writeFileSync(path, pems.cert);
  return { cert: pems.cert, key: pems.private, path };
}
