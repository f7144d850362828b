// The one policy for property-based tests (fast-check) over parsers that read partner bytes: a
// fixed seed and a bounded number of runs, so that `npm test` is repeatable and its time known,
// and a failure message that says how to replay it.
//   TSUNAGI_PROPERTY_SEED=N   another seed (default fixed below)
//   TSUNAGI_PROPERTY_RUNS=N   runs per property instead of each property's own bound (a longer soak)
import fc from 'fast-check';
import { luhnCheckDigit } from '../../formats/card.ts';

export const PROPERTY_SEED = envInt('TSUNAGI_PROPERTY_SEED') ?? 20_261_201;
const RUNS_OVERRIDE = envInt('TSUNAGI_PROPERTY_RUNS');

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new Error(`${name} must be an integer, not '${v}'`);
  return Number(v);
}

/** fast-check parameters under the policy: `runs` is the property's own bound (kept small). */
export function propertyParameters(runs: number): fc.Parameters<unknown> {
  return { seed: PROPERTY_SEED, numRuns: RUNS_OVERRIDE ?? runs };
}

function withReplayHint(err: unknown): never {
  if (err instanceof Error) {
    // fast-check keeps the predicate's own failure as the cause; the test runner does not print causes.
    const cause = err.cause instanceof Error ? `\nfailure: ${err.cause.message}` : '';
    err.message = `${err.message}${cause}\n(property seed ${PROPERTY_SEED}: replay with TSUNAGI_PROPERTY_SEED=${PROPERTY_SEED}${RUNS_OVERRIDE ? ` TSUNAGI_PROPERTY_RUNS=${RUNS_OVERRIDE}` : ''})`;
  }
  throw err;
}

/** fc.assert under the policy; a failure names the seed (fast-check adds the counterexample and its path). */
export function checkProperty<Ts extends [unknown, ...unknown[]]>(runs: number, arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }, predicate: (...args: Ts) => boolean | void): void {
  try {
    fc.assert(fc.property(...arbs, predicate), propertyParameters(runs) as fc.Parameters<Ts>);
  } catch (err) {
    withReplayHint(err);
  }
}

export async function checkAsyncProperty<Ts extends [unknown, ...unknown[]]>(runs: number, arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> }, predicate: (...args: Ts) => Promise<boolean | void>): Promise<void> {
  try {
    await fc.assert(fc.asyncProperty(...arbs, predicate), propertyParameters(runs) as fc.Parameters<Ts>);
  } catch (err) {
    withReplayHint(err);
  }
}

/** A Luhn-valid card number of 16 digits (as the partner's data holds them). */
export const cardNumberArb: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom('4', '5', '35', '37'), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 14, maxLength: 14 }))
  .map(([prefix, digits]) => {
    const partial = (prefix + digits.join('')).slice(0, 15);
    return partial + luhnCheckDigit(partial);
  });

/**
 * Checks what a parser threw: one of `allowed` (our typed errors), never a TypeError or RangeError
 * from reading past an end, with a message that does not hold `card` whole.
 */
export function assertClearError(err: unknown, allowed: (new (...args: never[]) => Error)[], card?: string): void {
  if (!(err instanceof Error)) throw new Error(`threw a non-Error: ${String(err)}`);
  if (!allowed.some((cls) => err instanceof cls)) {
    throw new Error(`threw ${err.constructor.name} instead of ${allowed.map((c) => c.name).join(' or ')}: ${err.message}`, { cause: err });
  }
  if (!err.message) throw new Error(`${err.constructor.name} without a message`);
  if (card && err.message.includes(card)) throw new Error(`error message holds a whole card number: ${err.message.replace(card, '<CARD>')}`);
}

/** Runs `fn`; returns its value or checks its error with assertClearError. */
export function parsesOrRefuses<T>(fn: () => T, allowed: (new (...args: never[]) => Error)[], card?: string): T | undefined {
  try {
    return fn();
  } catch (err) {
    assertClearError(err, allowed, card);
    return undefined;
  }
}

export async function parsesOrRefusesAsync<T>(fn: () => Promise<T>, allowed: (new (...args: never[]) => Error)[], card?: string): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    assertClearError(err, allowed, card);
    return undefined;
  }
}

/** Bytes built around a valid message: random bytes, the message cut, or a few bytes flipped. */
export function mutationsOf(valid: Buffer): fc.Arbitrary<Buffer> {
  const flipped = fc
    .array(fc.tuple(fc.nat({ max: Math.max(0, valid.length - 1) }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 })
    .map((flips) => {
      const b = Buffer.from(valid);
      for (const [at, x] of flips) b[at] = b[at]! ^ x;
      return b;
    });
  const cut = fc.nat({ max: valid.length }).map((n) => valid.subarray(0, n));
  const extended = fc.uint8Array({ minLength: 1, maxLength: 32 }).map((tail) => Buffer.concat([valid, Buffer.from(tail)]));
  const random = fc.uint8Array({ maxLength: valid.length * 2 }).map((a) => Buffer.from(a));
  return fc.oneof({ weight: 4, arbitrary: flipped }, { weight: 2, arbitrary: cut }, { weight: 1, arbitrary: extended }, { weight: 1, arbitrary: random });
}
