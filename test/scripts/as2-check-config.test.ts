// `tsunagi check-config` and AS2 certificates: an expired one is refused (exit 2), one that expires
// within 30 days is a warning; `tsunagi init` writes an AS2 key and self-signed certificate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs the CLI in this process (a child per call costs seconds of tsx start-up), capturing its output. */
async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../../scripts/cli.ts');
  let stdout = '';
  let stderr = '';
  const [o, e] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((c: string | Uint8Array) => ((stdout += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((stderr += String(c)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), stdout, stderr };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

async function cert(dir: string, name: string, days: number): Promise<string> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const crt = path.join(dir, `${name}.crt`);
  await run('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  await run('openssl', ['x509', '-req', '-in', csr, '-signkey', key, '-days', String(days), '-out', crt]);
  return name;
}

function config(partnerCert: string): string {
  return `centre: { code: "0000000001", name: CHECK }
partners:
  - id: cc-as2
    name: AS2 CARD
    role: card-company
    code: "2000000001"
    cardCompanyCodes: ["001"]
    receive: ["32"]
    delivery: { protocol: as2, url: "https://as2.example/as2" }
    as2: { id: CC, ourId: TSUNAGI, keys: [{ cert: { file: ./ours.crt }, key: { file: ./ours.key } }], partnerCertificates: [{ file: ./${partnerCert}.crt }] }
`;
}

test('check-config refuses an expired AS2 certificate and warns 30 days ahead; init writes an AS2 key and certificate', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsunagi-as2-check-'));
  await Promise.all([cert(dir, 'ours', 400), cert(dir, 'expired', -1), cert(dir, 'soon', 10), cert(dir, 'fine', 365)]);
  const file = path.join(dir, 'tsunagi.yaml');
  await writeFile(file, config('expired'));
  const bad = await cli(['check-config', '--config', file]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /partners\.cc-as2\.as2\.partnerCertificates\[0\]: certificate CN=expired expired on/);
  await writeFile(file, config('soon'));
  const soon = await cli(['check-config', '--config', file]);
  assert.equal(soon.code, 0);
  assert.match(soon.stderr, /warning: .*CN=soon expires on .* \(in (9|10) days\)/);
  assert.match(soon.stdout, /ok/);
  await writeFile(file, config('fine'));
  const fine = await cli(['check-config', '--config', file]);
  // Only the warning that this test config has no encryption at rest (not what this test is about).
  assert.equal(fine.stderr.replace(/^warning: encryption: not configured.*\n/m, ''), '');
  const noSection = config('fine').replace(/    as2: .*\n/, '');
  await writeFile(file, noSection);
  const missing = await cli(['check-config', '--config', file]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /partners\[0\]\.as2.*delivery as2 needs an as2 section/);

  const centre = path.join(dir, 'centre');
  assert.equal((await cli(['init', centre])).code, 0);
  const x509 = new X509Certificate(await readFile(path.join(centre, 'keys', 'as2_cert.pem')));
  assert.equal(x509.publicKey.asymmetricKeyType, 'rsa');
  assert.ok(x509.checkPrivateKey(createPrivateKey(await readFile(path.join(centre, 'keys', 'as2_key.pem')))));
  assert.ok(Date.parse(x509.validTo) > Date.now() + 365 * 86_400_000);
  const checked = await cli(['check-config', '--config', path.join(centre, 'tsunagi.yaml')]);
  assert.match(checked.stdout, /ok/);
});
