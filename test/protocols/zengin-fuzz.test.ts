// Fuzz: random bytes, mutated, truncated and reordered messages thrown at the listener. It never
// crashes, never lands a file, and always closes the connection (at once or on the inactivity timeout).
// The inputs come from the property-test seed (test/helpers/property.ts), so a failure replays:
//   TSUNAGI_PROPERTY_SEED=N   another seed (printed; default fixed)
//   ZENGIN_FUZZ_ROUNDS=N      inputs (default 400, thrown 40 at a time)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ZenginClient } from '../../protocols/zengin/client.ts';
import { FileKind, encodeDataHeader, encodeTtc } from '../../protocols/zengin/messages.ts';
import { makeFile, startHarness } from './zengin-helpers.ts';
import { fileControl, openRequest } from './zengin-raw.ts';
import { PROPERTY_SEED } from '../helpers/property.ts';
import { seededRandom } from '../../formats/index.ts';

const random = seededRandom(PROPERTY_SEED);
/** An integer in [min, max) (or [0, min) with one argument), from the seeded source. */
function randomInt(min: number, max?: number): number {
  if (max === undefined) [min, max] = [0, min];
  return min + Math.floor(random() * (max - min));
}
function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = randomInt(256);
  return b;
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** A valid 連絡 exchange up to 終了要求, and the byte positions where any change must be refused. */
function validExchange(): { messages: Buffer[]; positions: number[][] } {
  const records = randomBytes(2 * 200);
  Buffer.from('1310'.padEnd(200, ' '), 'ascii').copy(records, 0);
  return {
    messages: [
      openRequest(),
      fileControl({ textCount: 1, recordCount: 2 }),
      Buffer.concat([encodeDataHeader(1, 400), records]),
      fileControl({ kind: FileKind.endRequest, textCount: 1, recordCount: 2 }),
    ],
    positions: [
      [...range(0, 20), ...range(27, 34)], // TTC, kind, result, both codes, password, application, mode
      [...range(0, 4), 6, ...range(7, 24), ...range(30, 37)], // not the kind (0x14 is valid too) nor counts (0 is "unknown")
      range(0, 4),
      [...range(0, 37)],
    ],
  };
}

function mutated(): Buffer {
  const { messages, positions } = validExchange();
  const i = randomInt(messages.length);
  const msg = Buffer.from(messages[i]!);
  for (let k = 0; k < 1 + randomInt(3); k++) {
    const at = positions[i]![randomInt(positions[i]!.length)]!;
    msg[at] = msg[at]! ^ (1 + randomInt(255));
  }
  messages[i] = msg;
  return Buffer.concat(messages);
}

function truncated(): Buffer {
  const all = Buffer.concat(validExchange().messages);
  return all.subarray(0, randomInt(all.length - 1));
}

function reordered(): Buffer {
  const { messages } = validExchange();
  let order = [0, 1, 2, 3];
  while (order.join() === '0,1,2,3') order = order.sort(() => random() - 0.5);
  return Buffer.concat(order.map((i) => messages[i]!));
}

function randomFrames(): Buffer {
  const parts: Buffer[] = [openRequest()];
  for (let k = 0; k < 1 + randomInt(4); k++) {
    const len = randomInt(5, 400);
    const body = randomBytes(len);
    encodeTtc({ form: 'pc', isData: random() < 0.5, seq: randomInt(3), length: random() < 0.8 ? len : randomInt(65536) }, body);
    if (len > 5 && random() < 0.5) body[5] = [0x02, 0x04, 0x10, 0x12, 0x13, 0x14][randomInt(6)]!;
    parts.push(body);
  }
  return Buffer.concat(parts);
}

const generators = [() => randomBytes(randomInt(1, 300)), mutated, mutated, mutated, truncated, reordered, randomFrames];

/**
 * Sends `bytes` and resolves once the listener closed the connection. Each input comes from its
 * own loopback address (127.0.0.2-201), so that the per-address cap on connections not logged in
 * does not refuse most of a batch before the parser sees it, and one address's failed logins do
 * not slow every later login down (those delays and caps are tested in zengin-lockout and admission).
 */
function throwAt(port: number, bytes: Buffer, round: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (round % 200)}` });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`listener kept the connection open after input ${round} (replay with TSUNAGI_PROPERTY_SEED=${PROPERTY_SEED}): ${bytes.toString('hex')}`));
    }, 8000);
    socket.on('error', () => undefined); // the listener may close while we write
    socket.on('data', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('connect', () => socket.write(bytes));
  });
}

test('fuzz: the listener never crashes, never lands a file, always closes', async () => {
  // What bounds how long a connection may stay open: before login the grace time (which also
  // ends a login delayed by earlier failures), after it the inactivity timeout per message, then
  // at most 2 s for the peer to take the close. 4 + 1 + 2 s is inside the 8 s each input is given.
  const h = await startHarness({ listener: { inactivitySeconds: 1, loginGraceSeconds: 4, maxUnauthenticated: 100 } });
  try {
    const rounds = Number(process.env.ZENGIN_FUZZ_ROUNDS ?? 400);
    console.log(`# zengin fuzz seed ${PROPERTY_SEED}, ${rounds} inputs (replay with TSUNAGI_PROPERTY_SEED=${PROPERTY_SEED})`);
    for (let done = 0; done < rounds; done += 40) {
      const inputs = Array.from({ length: 40 }, () => generators[randomInt(generators.length)]!());
      await Promise.all(inputs.map((bytes, i) => throwAt(h.listener.port, bytes, done + i)));
    }
    assert.deepEqual(await h.inbound(), [], 'no fuzzed exchange lands a file');
    // Still alive and serving.
    const data = makeFile('31', 10, 200);
    await writeFile(path.join(h.dir, 'ok'), data);
    await new ZenginClient(await h.endpoint()).push(path.join(h.dir, 'ok'), '31');
    assert.equal((await h.inbound()).length, 1);
  } finally {
    await h.close();
  }
});
