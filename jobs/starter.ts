// A working starter centre: config, spool tree and the folders of the example partners.
// `tsunagi init` writes it for operators to edit; `tsunagi demo` runs a cycle on it.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathExists } from '../spool/atomic.ts';
import { randomBytes } from 'node:crypto';
import { parseConfig, type TsunagiConfig } from './config.ts';
import { writeNewKekFile } from '../spool/keys.ts';
import { SpoolTree } from '../spool/tree.ts';
import { ensureSelfSignedCert, ensureSshKeyPair } from './keys.ts';
import { ensureAs2Certificate } from '../protocols/as2/keys.ts';

export interface StarterOptions {
  sftpPort?: number;
  ftpPort?: number;
  /** Our 全銀TCP/IP TLS port (the starter offers no plain port). */
  zenginPort?: number;
  webPort?: number;
  /** authorized_keys line of the example merchant m-tokyo on our SFTP server */
  merchantPublicKey?: string;
  /** YAML for cc-alpha's delivery; default a local folder */
  ccAlphaDelivery?: string;
  as2Port?: number;
  /** More partners (YAML list items), e.g. the demo's AS2 partners */
  extraPartners?: string;
}

export function starterConfig(o: StarterOptions = {}): string {
  return `# tsunagi config: see README.md "Config reference".
centre:
  code: "0000000001"          # our code in headers (senderCode / receiverCode)
  name: TSUNAGI DEMO CENTRE
spoolRoot: ./spool
# Encryption at rest: every spool file (and the card vault) under one key-encryption key, a
# file of mode 0600 (\`tsunagi keys new FILE\` makes one; an environment variable works too:
# kek: { env: TSUNAGI_KEK }). After a new key: old one under retired, then \`tsunagi keys rotate\`.
encryption:
  kek: { file: ./keys/kek }
ledger: sqlite:./tsunagi.db   # or postgres://user@host:5432/db
queue: embedded               # or redis://127.0.0.1:6379
quietPeriodSeconds: 0         # files dropped without a temporary name wait this long
retentionDays: 90
deliver:
  maxAttempts: 3
  backoffSeconds: 1
listeners:                    # our servers for partners, started by 'tsunagi serve'
  sftp:
    host: 127.0.0.1
    port: ${o.sftpPort ?? 2222}
    hostKey: { file: ./keys/sftp_host_ed25519 }
  ftp:
    host: 127.0.0.1
    port: ${o.ftpPort ?? 2121}
    pasvMin: 30000
    pasvMax: 30099
    tls: { cert: { file: ./keys/ftps_cert.pem }, key: { file: ./keys/ftps_key.pem } }
  zengin:                     # 全銀TCP/IP secondary station, over TLS (a self-signed certificate until you install yours)
    host: 127.0.0.1
    port: null                  # no plain 全銀TCP/IP; a partner that cannot speak TLS gets it on loopback only:
    # port: 5020                #   uncomment (with host 127.0.0.1) and leave that account's requireTls false
    tlsPort: ${o.zenginPort ?? 5021}
    tls: { cert: { file: ./keys/zengin_tls_cert.pem }, key: { file: ./keys/zengin_tls_key.pem } }
    ownCode: "F0F0F0F0F0F0F1"   # our 相手センター確認コード as partners configure it
  web:                        # merchant portal, operator console, /metrics, /healthz (users: tsunagi users add)
    host: 127.0.0.1
    port: ${o.webPort ?? 8443}
    tls: { cert: { file: ./keys/ftps_cert.pem }, key: { file: ./keys/ftps_key.pem } }
  as2:                        # our AS2 endpoint: partners POST to /as2, async MDNs to /as2/mdn
    host: 127.0.0.1
    port: ${o.as2Port ?? 4080}
    # tls: { cert: { file: ./keys/as2_tls_cert.pem }, key: { file: ./keys/as2_tls_key.pem } }
# An AS2 partner has an as2 section (our key and certificate: ./keys/as2_key.pem, as2_cert.pem):
#   as2: { id: PARTNER-AS2-ID, ourId: TSUNAGI, keys: [{ cert: { file: ./keys/as2_cert.pem }, key: { file: ./keys/as2_key.pem } }],
#          partnerCertificates: [{ file: ./keys/partner_as2_cert.pem }] }
#   delivery: { protocol: as2, url: https://as2.partner.example/as2, mdn: sync }
partners:
  # Merchant head offices (加盟店)
  - id: m-tokyo
    name: TOKYO DEPARTMENT STORE
    role: merchant
    code: "1000000001"
    merchantNos: ["101000000000001", "101000000000002", "100000000000001"]   # the last one is 'tsunagi gen's default
    send: ["31", "41", "61"]
    receive: ["33", "42", "51", "52", "71", "91"]
    jmanagerCycles: [D, M]
    delivery: { protocol: pull }            # picks up from its outbound folder over SFTP
    sftp:
      publicKeys: ["${o.merchantPublicKey ?? ''}"]
  - id: m-osaka
    name: OSAKA SUPERMARKET
    role: merchant
    code: "1000000002"
    merchantNos: ["102000000000001"]
    send: ["31"]
    receive: ["33", "51", "52", "91"]
    rejectPolicy: file                      # any error rejects the whole file
    formats:                                # 全銀TCP/IP carries records back to back: no line ends
      "31": { framing: none }
      "91": { framing: none }
      "52": { framing: none }
    delivery: { protocol: pull }            # asks for its files over 全銀TCP/IP (照会)
    zengin:                                 # calls us over 全銀TCP/IP, TLS only
      requireTls: true
      partnerCode: "F1F0F0F0F0F0F2"
      password: { file: ./keys/zengin_m-osaka.password }
      files:
        - { zenginName: URIAGE000002, accessKey: OSAKA1, fileType: "31", direction: send }
        - { zenginName: HENKYAKU0002, accessKey: OSAKA1, fileType: "91", direction: receive }
        - { zenginName: KINKYU000002, accessKey: OSAKA1, fileType: "52", direction: receive }
  # Card companies (カード会社)
  - id: cc-alpha
    name: ALPHA CARD
    role: card-company
    code: "2000000001"
    cardCompanyCodes: ["001", "002"]
    send: ["33", "42", "51", "52"]
    receive: ["32", "41"]
    delivery: ${o.ccAlphaDelivery ?? '{ protocol: local, path: ./remote/cc-alpha }'}
  - id: cc-beta
    name: BETA CREDIT
    role: card-company
    code: "2000000002"
    cardCompanyCodes: ["003"]
    send: ["33"]
    receive: ["32", "41"]
    formats:                                # a mainframe: EBCDIC, 120 bytes, no line ends
      "32": { layout: sales.company120, encoding: ebcdic-kana, framing: none }
      "33": { layout: sales.company120, encoding: ebcdic-kana, framing: none }
    delivery: { protocol: local, path: ./remote/cc-beta }
  - id: gift-one
    name: GIFT ONE
    role: card-company
    code: "2000000009"
    cardCompanyCodes: ["901"]
    receive: ["61"]
    delivery: { protocol: local, path: ./remote/gift-one }
  # The online centre that sends terminal transactions (81) for Jmanager and reconciliation
  - id: online
    name: ONLINE CENTRE
    role: online-centre
    code: "9000000001"
    send: ["81"]
${o.extraPartners ?? ''}`;
}

/** Six upper-case letters or digits: what fits a 全銀 password written in EBCDIC. */
function randomZenginPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  return Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
}


/**
 * Writes the starter config (unless one is there) with its keys (SFTP host key, FTPS and 全銀 TLS
 * certificates, an example merchant's key pair), and builds its spool and partner folders.
 */
export async function initCentre(dir: string, options: StarterOptions = {}): Promise<{ configFile: string; config: TsunagiConfig; created: boolean }> {
  await mkdir(dir, { recursive: true });
  const keys = path.join(path.resolve(dir), 'keys');
  await mkdir(keys, { recursive: true, mode: 0o700 });
  await ensureSshKeyPair(path.join(keys, 'sftp_host_ed25519'), 'tsunagi sftp host key');
  await ensureSelfSignedCert(path.join(keys, 'ftps_cert.pem'), path.join(keys, 'ftps_key.pem'));
  await ensureSelfSignedCert(path.join(keys, 'zengin_tls_cert.pem'), path.join(keys, 'zengin_tls_key.pem'));
  await ensureAs2Certificate(path.join(keys, 'as2_cert.pem'), path.join(keys, 'as2_key.pem'), 'tsunagi AS2');
  const merchant = await ensureSshKeyPair(path.join(keys, 'm-tokyo_ed25519'), 'example merchant m-tokyo');
  if (!(await pathExists(path.join(keys, 'kek')))) await writeNewKekFile(path.join(keys, 'kek'));
  const zenginPassword = path.join(keys, 'zengin_m-osaka.password');
  if (!(await pathExists(zenginPassword))) await writeFile(zenginPassword, randomZenginPassword(), { mode: 0o600 });
  const configFile = path.join(path.resolve(dir), 'tsunagi.yaml');
  const created = !(await pathExists(configFile));
  if (created) await writeFile(configFile, starterConfig({ merchantPublicKey: merchant.publicLine, ...options }), { mode: 0o640 });
  const config = parseConfig(await readFile(configFile, 'utf8'), configFile);
  await new SpoolTree(path.resolve(config.baseDir, config.spoolRoot)).ensure(config.partners.map((p) => p.id));
  for (const p of config.partners) {
    if (p.delivery.protocol === 'local') await mkdir(path.resolve(config.baseDir, p.delivery.path), { recursive: true });
  }
  return { configFile, config, created };
}
