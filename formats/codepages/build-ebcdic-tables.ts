// One-off generator of ebcdic-tables.json from glibc iconv (the reference the spec names).
// Run: node --import tsx formats/codepages/build-ebcdic-tables.ts
// The committed JSON is data; test/formats/ebcdic.test.ts re-checks it against iconv.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function iconv(from: string, input: Buffer, lenient = false): string | null {
  const args = lenient ? ['-c', '-f', from, '-t', 'UTF-32BE'] : ['-f', from, '-t', 'UTF-32BE'];
  const r = spawnSync('iconv', args, { input });
  if (r.status !== 0 && !lenient) return null;
  const out: number[] = [];
  for (let i = 0; i + 3 < r.stdout.length; i += 4) out.push(r.stdout.readUInt32BE(i));
  return String.fromCodePoint(...out);
}

function singleBytes(codepage: string): (number | null)[] {
  const table: (number | null)[] = [];
  for (let b = 0; b < 256; b++) {
    const s = iconv(codepage, Buffer.from([b]));
    table.push(s === null || s.length !== 1 ? null : s.codePointAt(0)!);
  }
  return table;
}

// DBCS: one iconv per lead byte, each pair followed by the DBCS space 0x4040 (U+3000) as a
// separator; with -c an undefined pair yields nothing, so the separators keep the alignment.
function doubleBytes(): Record<string, number> {
  const map: Record<string, number> = {};
  for (let lead = 0x40; lead <= 0xfe; lead++) {
    const bytes = [0x0e];
    for (let trail = 0x40; trail <= 0xfe; trail++) bytes.push(lead, trail, 0x40, 0x40);
    bytes.push(0x0f);
    const out = [...(iconv('IBM930', Buffer.from(bytes), true) ?? '')];
    let i = 0;
    for (let trail = 0x40; trail <= 0xfe; trail++) {
      if (lead === 0x40 && trail === 0x40) { map['4040'] = 0x3000; i += 2; continue; }
      if (out[i] !== '\u3000') { map[((lead << 8) | trail).toString(16)] = out[i]!.codePointAt(0)!; i++; }
      if (out[i] !== '\u3000') throw new Error(`misaligned at ${lead.toString(16)}${trail.toString(16)}`);
      i++;
    }
    if (i !== out.length) throw new Error(`row ${lead.toString(16)}: ${out.length - i} extra`);
  }
  return map;
}

const tables = { ibm037: singleBytes('IBM037'), ibm930sbcs: singleBytes('IBM930'), ibm930dbcs: doubleBytes() };
const target = fileURLToPath(new URL('./ebcdic-tables.json', import.meta.url));
writeFileSync(target, JSON.stringify(tables) + '\n');
console.log(`wrote ${target}: dbcs pairs ${Object.keys(tables.ibm930dbcs).length}`);
