// The demo's AS2 partners: card company cc-gamma runs its own AS2 server and receives its 32 from
// our client with a signed sync MDN; merchant m-nagoya sends its 31 to our AS2 listener with its own
// AS2 client and gets a signed async MDN on its receipt URL.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { generateFile } from '../../formats/index.ts';
import { As2Client } from '../../protocols/as2/client.ts';
import { as2EndpointSchema, as2ListenerSchema, loadPartnership } from '../../protocols/as2/config.ts';
import { ensureAs2Certificate } from '../../protocols/as2/keys.ts';
import { createAs2Listener } from '../../protocols/as2/listener.ts';
import { openLedger } from '../../spool/ledger/index.ts';
import { SpoolTree } from '../../spool/tree.ts';

export interface As2DemoPorts {
  centre: number;
  ccGamma: number;
  mNagoya: number;
}

/** Keys of the two AS2 partners (the centre's own comes from init) and their config entries. */
export async function prepareAs2Demo(dir: string, ports: As2DemoPorts): Promise<string> {
  const keys = path.join(dir, 'keys');
  await ensureAs2Certificate(path.join(keys, 'cc-gamma_as2_cert.pem'), path.join(keys, 'cc-gamma_as2_key.pem'), 'cc-gamma AS2');
  await ensureAs2Certificate(path.join(keys, 'm-nagoya_as2_cert.pem'), path.join(keys, 'm-nagoya_as2_key.pem'), 'm-nagoya AS2');
  const ours = '{ cert: { file: ./keys/as2_cert.pem }, key: { file: ./keys/as2_key.pem } }';
  return `  # AS2 partners (added by the demo)
  - id: cc-gamma
    name: GAMMA CARD
    role: card-company
    code: "2000000003"
    cardCompanyCodes: ["004"]
    send: ["33"]
    receive: ["32", "41"]
    delivery: { protocol: as2, url: "http://127.0.0.1:${ports.ccGamma}/as2", sign: sha256, encrypt: aes256-cbc, mdn: sync, signedMdn: true }
    as2: { id: CC-GAMMA, ourId: TSUNAGI, keys: [${ours}], partnerCertificates: [{ file: ./keys/cc-gamma_as2_cert.pem }] }
  - id: m-nagoya
    name: NAGOYA HOME CENTRE
    role: merchant
    code: "1000000003"
    merchantNos: ["103000000000001"]
    send: ["31"]
    receive: ["33", "51", "52", "91"]
    delivery: { protocol: pull }
    as2: { id: M-NAGOYA, ourId: TSUNAGI, requireEncrypted: true, keys: [${ours}], partnerCertificates: [{ file: ./keys/m-nagoya_as2_cert.pem }] }
`;
}

/** A partner's own AS2 software (our listener, run for the partner with its own ledger and folders). */
async function partnerStation(dir: string, name: string, port: number, log: Logger) {
  const root = path.join(dir, `${name}-as2`);
  const spool = new SpoolTree(root);
  await spool.ensure(['tsunagi']);
  const ledger = await openLedger(`sqlite:${path.join(root, 'as2.db')}`);
  const keys = path.join(dir, 'keys');
  const account = {
    id: 'TSUNAGI',
    ourId: name.toUpperCase(),
    keys: [{ cert: { file: path.join(keys, `${name}_as2_cert.pem`) }, key: { file: path.join(keys, `${name}_as2_key.pem`) } }],
    partnerCertificates: [{ file: path.join(keys, 'as2_cert.pem') }],
    requireSigned: true,
    requireEncrypted: false,
  };
  const partnership = loadPartnership('tsunagi', account);
  const listener = createAs2Listener(as2ListenerSchema.parse({ host: '127.0.0.1', port }), [partnership], { spool, ledger, log: log.child({ server: name }) });
  await listener.start();
  return { spool, ledger, partnership, inbound: spool.inbound('tsunagi'), stop: async () => (await listener.stop(), await ledger.close()) };
}

export async function startCardCompanyAs2(dir: string, port: number, log: Logger) {
  return partnerStation(dir, 'cc-gamma', port, log);
}

/** m-nagoya's head office makes its 31 file and sends it to our AS2 listener, asking an async MDN. */
export async function merchantSendsOverAs2(dir: string, ports: As2DemoPorts, today: string, log: Logger): Promise<string> {
  const office = path.join(dir, 'm-nagoya-office', 'to-send');
  await mkdir(office, { recursive: true });
  const file = path.join(office, 'URIAGE_NGY.dat');
  const r = await generateFile('31', { createdDate: today, merchantNo: '103000000000001', senderCode: '1000000003', receiverCode: '0000000001', records: 60, seed: 7, fileSeq: 1, cardCompanyCodes: ['001', '004'], out: file });
  const station = await partnerStation(dir, 'm-nagoya', ports.mNagoya, log);
  try {
    const endpoint = as2EndpointSchema.parse({
      protocol: 'as2',
      url: `http://127.0.0.1:${ports.centre}/as2`,
      mdn: 'async',
      receiptUrl: `http://127.0.0.1:${ports.mNagoya}/as2/mdn`,
      compress: 'before-signing',
      mdnTimeoutSeconds: 30,
    });
    const client = new As2Client({ partnership: station.partnership, endpoint, ledger: station.ledger, log: log.child({ client: 'm-nagoya' }), pollMs: 100 });
    const sent = await client.push(file, 'URIAGE_NGY.dat');
    const row = await station.ledger.db('as2_sent').where({ remote_name: 'URIAGE_NGY.dat' }).first();
    return `m-nagoya sent URIAGE_NGY.dat over AS2 (${sent.bytes} bytes, 31, ${r.recordCount} records; compressed, signed, encrypted); our signed async MDN reached its receipt URL: ${row?.disposition}`;
  } finally {
    await station.stop();
  }
}
