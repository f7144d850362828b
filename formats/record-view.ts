// A record's fields by name, decoded on access from a canonical record, with no object per record:
// one view per layout is re-pointed at each record. Valid only during the callback that gets it;
// spread it ({ ...view }) to keep a copy.
import { decodeField, readDigits } from './field-codec.ts';
import type { Layout } from './layouts.ts';

export type RecordFields = Readonly<Record<string, string>>;

export interface RecordView {
  fields: RecordFields;
  point(buf: Buffer, off: number): void;
}

export function makeRecordView(layout: Layout): RecordView {
  let cur: Buffer = Buffer.alloc(layout.recordLength);
  let at = 0;
  const fields: Record<string, string> = {};
  for (const f of layout.fields) {
    if (f.name === 'filler') continue;
    if (f.type === 'N' && f.length <= 4) {
      // short digit fields (codes, routing keys): the same few strings again and again, kept by value
      const known: (string | undefined)[] = new Array(10 ** f.length);
      const s = f.offset;
      const len = f.length;
      Object.defineProperty(fields, f.name, {
        enumerable: true,
        get: () => {
          const v = readDigits(cur, at + s, len);
          if (v !== v) return decodeField(cur, at, f);
          return known[v] ?? (known[v] = decodeField(cur, at, f));
        },
      });
      continue;
    }
    Object.defineProperty(fields, f.name, { enumerable: true, get: () => decodeField(cur, at, f) });
  }
  return { fields, point(buf, off) { cur = buf; at = off; } };
}

/** A plain copy of every field (but the filler). */
export function snapshotFields(layout: Layout, buf: Buffer, off: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of layout.fields) if (f.name !== 'filler') out[f.name] = decodeField(buf, off, f);
  return out;
}
