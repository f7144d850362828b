// Our SFTP listener (key login) and FTP listener (plain FTP, password) for one partner, on
// OS-assigned ports, for tests of what every listener must do with an upload.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { SFTPWrapper } from 'ssh2';
import { createSftpListener } from '../../protocols/sftp/listener.ts';
import { sftpAccountSchema, sftpListenerSchema } from '../../protocols/sftp/config.ts';
import { createFtpListener } from '../../protocols/ftp/listener.ts';
import { ftpAccountSchema, ftpListenerSchema } from '../../protocols/ftp/config.ts';
import type { ListenerContext, ProtocolListener } from '../../protocols/contract.ts';
import { freePort, sshKeygen } from './sshd.ts';

export interface PartnerListeners {
  sftp: ProtocolListener;
  ftp: ProtocolListener;
  /** The partner's SFTP private key (its login is the partner id). */
  privateKey: Buffer;
  /** The partner's FTP password (its login is the partner id). */
  password: string;
  /** Runs `fn` in an SFTP session logged in as the partner. */
  sftpSession<T>(fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

export async function startSftpAndFtp(dir: string, ctx: ListenerContext, partnerId: string): Promise<PartnerListeners> {
  const key = await sshKeygen(dir, 'merchant');
  const host = await sshKeygen(dir, 'host');
  const password = 'kamome-1';
  await writeFile(path.join(dir, 'pw'), `${password}\n`);
  const sftp = createSftpListener(sftpListenerSchema.parse({ port: 0, hostKey: { file: host.privatePath } }), [{ partnerId, ...sftpAccountSchema.parse({ publicKeys: [key.publicLine] }) }], ctx);
  const pasvMin = await freePort();
  const ftp = createFtpListener(
    ftpListenerSchema.parse({ port: 0, pasvMin, pasvMax: Math.min(pasvMin + 5, 65535) }),
    [{ partnerId, ...ftpAccountSchema.parse({ password: { file: path.join(dir, 'pw') }, plain: true }) }],
    ctx,
  );
  await sftp.start();
  await ftp.start();
  const privateKey = await readFile(key.privatePath);
  return {
    sftp,
    ftp,
    privateKey,
    password,
    async sftpSession(fn) {
      const conn = new ssh2.Client();
      const session = await new Promise<SFTPWrapper>((resolve, reject) => {
        conn.once('error', reject);
        conn.once('ready', () => conn.sftp((err, s) => (err ? reject(err) : resolve(s))));
        conn.connect({ host: '127.0.0.1', port: sftp.port, username: partnerId, privateKey, hostVerifier: () => true });
      });
      try {
        return await fn(session);
      } finally {
        conn.end();
      }
    },
    async stop() {
      await sftp.stop();
      await ftp.stop();
    },
  };
}
