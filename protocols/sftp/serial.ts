// Small helpers our protocol clients share: one operation at a time, and a deadline on each.

/** Runs tasks strictly one after another (a client's connection is not safe for parallel use). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export class OperationTimeout extends Error {}

/**
 * Runs `work` with an inactivity deadline: it fails when `ms` pass without progress. `work` gets
 * `touch` to report progress, so a long transfer that keeps moving is never cut off.
 * `onTimeout` should tear the connection down so the stuck operation ends too.
 */
export async function withTimeout<T>(
  what: string,
  ms: number,
  work: (touch: () => void) => Promise<T>,
  onTimeout: () => void,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let fail: (err: Error) => void = () => undefined;
  const deadline = new Promise<never>((_, reject) => {
    fail = reject;
  });
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      onTimeout();
      fail(new OperationTimeout(`${what}: no progress for ${ms / 1000}s`));
    }, ms);
  };
  arm();
  const running = work(arm);
  try {
    return await Promise.race([running, deadline]);
  } finally {
    clearTimeout(timer);
    running.catch(() => undefined); // a late failure after the deadline must not surface as unhandled
  }
}

/**
 * A temporary name in the partner's folder for an upload of `name`: NAME.<unique>.part. No leading
 * dot, because some servers (ours included) refuse dot files; the .part suffix is what partners'
 * pickup scans (and our isTemporaryName) skip.
 */
export function remoteTemporaryName(name: string): string {
  return `${name}.${process.pid.toString(36)}${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}.part`;
}
