// Where a config problem is: the offending key's own line in the YAML (not its parent's), and for an
// unknown key the nearest key the schema knows at that place ("did you mean 'quietPeriodSeconds'?").
import { isMap, isNode, isScalar, type Document, type LineCounter } from 'yaml';
import type { z } from 'zod';

type AnySchema = z.core.$ZodType;

/** The line of `key` inside the map at `parentPath`, if the YAML has it. */
function keyLine(doc: Document, lc: LineCounter, parentPath: PropertyKey[], key: PropertyKey): number | undefined {
  const parent = parentPath.length ? doc.getIn(parentPath as unknown[], true) : doc.contents;
  if (isMap(parent)) {
    for (const pair of parent.items) {
      const k = isScalar(pair.key) ? pair.key.value : pair.key;
      if (String(k) === String(key) && isNode(pair.key) && pair.key.range) return lc.linePos(pair.key.range[0]).line;
    }
  }
  if (typeof key === 'number') {
    const item = doc.getIn([...parentPath, key] as unknown[], true);
    if (isNode(item) && item.range) return lc.linePos(item.range[0]).line;
  }
  return undefined;
}

/** The line of the deepest part of `path` that the YAML has: the key itself, else its nearest parent. */
export function lineOf(doc: Document, lc: LineCounter, path: PropertyKey[]): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const line = keyLine(doc, lc, path.slice(0, n - 1), path[n - 1]!);
    if (line !== undefined) return line;
  }
  return isNode(doc.contents) && doc.contents.range ? lc.linePos(doc.contents.range[0]).line : undefined;
}

/** The object keys the schema accepts at `path` (with `data` to pick a discriminated union's branch). */
export function knownKeysAt(schema: AnySchema, path: PropertyKey[], data: unknown): string[] {
  let nodes: AnySchema[] = [schema];
  let value = data;
  const unwrap = (s: AnySchema): AnySchema[] => {
    const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
    if (['optional', 'default', 'nullable', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(def.type)) return unwrap(def.innerType as AnySchema);
    // z.preprocess is a pipe from a transform into the schema: look at both ends.
    if (def.type === 'pipe') return [...unwrap(def.in as AnySchema), ...unwrap(def.out as AnySchema)];
    if (def.type === 'union') return (def.options as AnySchema[]).flatMap(unwrap);
    return [s];
  };
  const step = (s: AnySchema, seg: PropertyKey): AnySchema[] => {
    const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
    if (def.type === 'object') {
      const child = (def.shape as Record<string, AnySchema>)[String(seg)];
      return child ? [child] : [];
    }
    if (def.type === 'array' && typeof seg === 'number') return [def.element as AnySchema];
    if (def.type === 'record') return [def.valueType as AnySchema];
    return [];
  };
  for (const seg of path) {
    nodes = nodes.flatMap(unwrap).flatMap((s) => step(s, seg));
    value = value && typeof value === 'object' ? (value as Record<string, unknown>)[String(seg)] : undefined;
  }
  const objects = nodes.flatMap(unwrap).filter((s) => (s._zod.def as { type: string }).type === 'object');
  // A discriminated union: the branch whose literal matches the data, when one does.
  const matching = objects.filter((s) => {
    const shape = (s._zod.def as unknown as { shape: Record<string, AnySchema> }).shape;
    const protocol = shape.protocol?._zod.def as unknown as { type: string; values?: unknown[] } | undefined;
    return !protocol || protocol.type !== 'literal' || !value || typeof value !== 'object' || protocol.values?.includes((value as Record<string, unknown>).protocol);
  });
  const chosen = matching.length ? matching : objects;
  return [...new Set(chosen.flatMap((s) => Object.keys((s._zod.def as unknown as { shape: Record<string, AnySchema> }).shape)))];
}

function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length]!;
}

/** The known key nearest to `key`, if it is near enough to be a typo. */
export function nearestKey(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}
