// SHA-256 of a received file computed on a worker thread, beside the receiving: at 32 KB data
// messages it was 60% of the 全銀 receiver's main-thread CPU (1.3-1.7 GB/s with SHA-NI), which the
// receive loop, the socket and the disk writes wait behind. One worker serves every session of
// the process. Buffers over a SharedArrayBuffer reach it without a copy (the caller keeps the
// buffer unchanged until update() resolves); any other buffer is copied by postMessage.
// Where no worker can start, the hash runs on the calling thread, as before.
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface RunningHash {
  /** Adds `data`; resolves once it was hashed (its buffer may then be reused). */
  update(data: Buffer): Promise<void>;
  /** The hex digest; the hash ends (no update after it). */
  digest(): Promise<string>;
  /** Drops the state without a digest (the file was suspended or discarded). */
  drop(): void;
}

// Plain JavaScript, run with `eval` and no loader: the worker starts in milliseconds.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.op === 'update') {
      let h = hashes.get(m.id);
      if (!h) hashes.set(m.id, (h = createHash('sha256')));
      h.update(m.shared ? new Uint8Array(m.shared, m.offset, m.length) : m.data);
      parentPort.postMessage({ n: m.n });
    } else if (m.op === 'digest') {
      const h = hashes.get(m.id) || createHash('sha256');
      hashes.delete(m.id);
      parentPort.postMessage({ n: m.n, hex: h.digest('hex') });
    } else if (m.op === 'drop') {
      hashes.delete(m.id);
    }
  } catch (err) {
    parentPort.postMessage({ n: m.n, error: String((err && err.message) || err) });
  }
});
`;

type Reply = { n: number; hex?: string; error?: string };

class HashWorker {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextRequest = 1;
  private nextHash = 1;
  broken: Error | null = null;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], env: {}, stdout: false, stderr: false });
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.n);
      if (!w) return;
      this.waiting.delete(r.n);
      if (this.waiting.size === 0) this.worker.unref();
      if (r.error) w.reject(new Error(`sha256 worker: ${r.error}`));
      else w.resolve(r);
    });
    const fail = (err: Error) => {
      this.broken ??= err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`sha256 worker exited with ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker's port again, and a worker
    // made for a file that never got a byte kept the process alive.
    this.worker.unref();
  }

  /** A request; the worker holds the process open only while one is answered. */
  private ask(message: { op: string; id: number; data?: Buffer; shared?: SharedArrayBuffer; offset?: number; length?: number }): Promise<Reply> {
    if (this.broken) return Promise.reject(this.broken);
    const n = this.nextRequest++;
    return new Promise<Reply>((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(n, { resolve, reject });
      this.worker.postMessage({ ...message, n });
    });
  }

  open(): RunningHash {
    const id = this.nextHash++;
    return {
      update: async (data) => {
        // A SharedArrayBuffer itself is shared; a view of one (a Buffer) would be copied.
        if (data.buffer instanceof SharedArrayBuffer) await this.ask({ op: 'update', id, shared: data.buffer, offset: data.byteOffset, length: data.length });
        else await this.ask({ op: 'update', id, data });
      },
      digest: async () => (await this.ask({ op: 'digest', id })).hex!,
      drop: () => {
        if (!this.broken) this.worker.postMessage({ op: 'drop', id, n: 0 });
      },
    };
  }
}

let shared: HashWorker | null | undefined;

function inThread(): RunningHash {
  const hash: Hash = createHash('sha256');
  return {
    update: async (data) => {
      hash.update(data);
    },
    digest: async () => hash.digest('hex'),
    drop: () => undefined,
  };
}

/** A new running SHA-256, on the shared worker thread when one can run. */
export function backgroundSha256(): RunningHash {
  if (shared === undefined || shared?.broken) {
    try {
      shared = new HashWorker();
    } catch {
      shared = null;
    }
  }
  return shared ? shared.open() : inThread();
}

/** A buffer of `size` bytes that reaches the worker without a copy. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}
