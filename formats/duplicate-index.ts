// Duplicate-record detection within one file (E303) in 16-byte slots (two or more per record): a 64-bit fingerprint
// of the key bytes in an open-addressing table, with the record number of the first occurrence.
// A false duplicate needs two different keys with the same 64-bit fingerprint (about 1 in 10^7
// for a file of ten million records).

export class DuplicateIndex {
  private capacity: number;
  /** slot i: [i*4] first hash, [i*4+1] second hash, [i*4+2] record number (0 = empty); 16 bytes, never across cache lines */
  private table: Uint32Array;
  private size = 0;
  private readonly starts: Int32Array;
  private readonly ends: Int32Array;

  /** ranges: [offset, length] of the key fields in the record; expected: records to size the table for */
  constructor(ranges: readonly (readonly [number, number])[], expected = 0) {
    this.starts = Int32Array.from(ranges.map((r) => r[0]));
    this.ends = Int32Array.from(ranges.map((r) => r[0] + r[1]));
    let cap = 1 << 16;
    while (cap < expected * 2 + 2) cap *= 2;
    this.capacity = cap;
    this.table = new Uint32Array(cap * 4);
  }

  /** Adds the key; returns the record number of an earlier record with the same key, or 0. */
  add(buf: Buffer, off: number, recordNo: number): number {
    let a = 0x811c9dc5, b = 0x9e3779b9;
    const { starts, ends } = this;
    for (let r = 0; r < starts.length; r++) {
      for (let i = off + starts[r]!; i < off + ends[r]!; i++) {
        const x = buf[i]!;
        a = Math.imul(a ^ x, 0x01000193);
        b = Math.imul(b ^ x, 0x5bd1e995) ^ (b >>> 15);
      }
    }
    a >>>= 0; b >>>= 0;
    if ((this.size + 1) * 2 > this.capacity) this.grow();
    const mask = this.capacity - 1;
    const t = this.table;
    for (let slot = a & mask; ; slot = (slot + 1) & mask) {
      const j = slot << 2;
      if (t[j + 2] === 0) {
        t[j] = a; t[j + 1] = b; t[j + 2] = recordNo; this.size++;
        return 0;
      }
      if (t[j] === a && t[j + 1] === b) return t[j + 2]!;
    }
  }

  private grow(): void {
    const old = this.table;
    this.capacity *= 2;
    const t = (this.table = new Uint32Array(this.capacity * 4));
    const mask = this.capacity - 1;
    for (let i = 0; i < old.length; i += 4) {
      if (old[i + 2] === 0) continue;
      let slot = old[i]! & mask;
      while (t[slot * 4 + 2] !== 0) slot = (slot + 1) & mask;
      t[slot * 4] = old[i]!; t[slot * 4 + 1] = old[i + 1]!; t[slot * 4 + 2] = old[i + 2]!;
    }
  }
}
