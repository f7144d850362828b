// Certificates and keys of an AS2 partnership: what CMS needs from a certificate (issuer and serial
// exactly as encoded, subject key identifier) and its validity, for matching and for check-config.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { child, decode, octets, oidOf, TAG, type Asn1 } from './der.ts';

export interface Certificate {
  der: Buffer;
  x509: X509Certificate;
  /** The issuer Name as encoded in the certificate. */
  issuer: Buffer;
  /** The serial number's INTEGER content octets. */
  serial: Buffer;
  subjectKeyId?: Buffer;
  publicKey: KeyObject;
  notBefore: number;
  notAfter: number;
  subject: string;
}

export interface OwnKey {
  certificate: Certificate;
  privateKey: KeyObject;
}

/** Every certificate of a PEM bundle (or one DER certificate). */
export function parseCertificates(data: Buffer | string): Certificate[] {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  const ders: Buffer[] = [];
  if (text.includes('-----BEGIN CERTIFICATE-----')) {
    for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)) ders.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  } else if (Buffer.isBuffer(data)) ders.push(data);
  return ders.map(certificateFromDer);
}

export function certificateFromDer(der: Buffer): Certificate {
  const cert = decode(der);
  const tbs = child(cert, 0, 'tbsCertificate');
  let i = tbs.children[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  const serial = child(tbs, i++, 'serialNumber');
  i++; // signature algorithm
  const issuer = child(tbs, i++, 'issuer');
  let subjectKeyId: Buffer | undefined;
  const extensions = tbs.children.find((c) => c.tag === 0xa3);
  for (const ext of extensions?.children[0]?.children ?? []) {
    if (oidOf(child(ext, 0)) === '2.5.29.14') {
      const value = ext.children[ext.children.length - 1]!;
      subjectKeyId = octets(decode(octets(value)));
    }
  }
  const x509 = new X509Certificate(der);
  return {
    der,
    x509,
    issuer: Buffer.from(issuer.raw),
    serial: Buffer.from(serial.content),
    subjectKeyId,
    publicKey: x509.publicKey,
    notBefore: Date.parse(x509.validFrom),
    notAfter: Date.parse(x509.validTo),
    subject: x509.subject.replace(/\n/g, ', '),
  };
}

export function loadOwnKey(certPem: Buffer | string, keyPem: Buffer | string): OwnKey {
  const [certificate] = parseCertificates(certPem);
  if (!certificate) throw new Error('no certificate found');
  const privateKey = createPrivateKey(keyPem);
  if (privateKey.asymmetricKeyType !== 'rsa') throw new Error(`AS2 keys must be RSA (got ${privateKey.asymmetricKeyType})`);
  return { certificate, privateKey };
}

/** Whether a CMS SignerIdentifier / RecipientIdentifier names this certificate. */
export function identifies(id: Asn1, cert: Certificate): boolean {
  if (id.tag === TAG.SEQUENCE) {
    // IssuerAndSerialNumber
    const issuer = child(id, 0);
    const serial = child(id, 1);
    return issuer.raw.equals(cert.issuer) && stripZeros(serial.content).equals(stripZeros(cert.serial));
  }
  if (id.tag === 0x80 || id.tag === 0xa0) return cert.subjectKeyId !== undefined && octets(id).equals(cert.subjectKeyId);
  return false;
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

export type ExpiryProblem = { level: 'error' | 'warning'; message: string };

/** check-config: expired (or not yet valid) certificates are errors; within `warnDays` of expiry, warnings. */
export function expiryProblems(cert: Certificate, what: string, now = Date.now(), warnDays = 30): ExpiryProblem[] {
  const day = 86_400_000;
  if (cert.notAfter < now) return [{ level: 'error', message: `${what}: certificate ${cert.subject} expired on ${new Date(cert.notAfter).toISOString()}` }];
  if (cert.notBefore > now) return [{ level: 'error', message: `${what}: certificate ${cert.subject} is not valid before ${new Date(cert.notBefore).toISOString()}` }];
  if (cert.notAfter - now < warnDays * day)
    return [{ level: 'warning', message: `${what}: certificate ${cert.subject} expires on ${new Date(cert.notAfter).toISOString()} (in ${Math.ceil((cert.notAfter - now) / day)} days)` }];
  return [];
}

export function isCurrentlyValid(cert: Certificate, now = Date.now()): boolean {
  return cert.notBefore <= now && now <= cert.notAfter;
}
