// The SQLite ledger holds masked card numbers only, but it is the evidence of every transfer and
// login: owner-only, like the spool (PCI DSS 3.4, 7). SQLite creates its -wal and -shm files with
// the main file's permissions, so making the main file 0600 before the first open covers all three.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';

export function prepareSqliteFile(target: string): void {
  mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
  closeSync(openSync(target, 'a', 0o600));
  for (const f of [target, `${target}-wal`, `${target}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}
