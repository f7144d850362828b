// Duplicate-record detection within one file (E303) in 12 bytes per record: a 64-bit fingerprint
// of the key bytes in an open-addressing table, with the record number of the first occurrence.
// A false duplicate needs two different keys with the same 64-bit fingerprint (about 1 in 10^7
// for a file of ten million records).

export class DuplicateIndex {
  private capacity: number;
  private h1: Uint32Array;
  private h2: Uint32Array;
  private recNo: Uint32Array;
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
    this.h1 = new Uint32Array(cap);
    this.h2 = new Uint32Array(cap);
    this.recNo = new Uint32Array(cap);
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
    for (let slot = a & mask; ; slot = (slot + 1) & mask) {
      if (this.recNo[slot] === 0) {
        this.h1[slot] = a; this.h2[slot] = b; this.recNo[slot] = recordNo; this.size++;
        return 0;
      }
      if (this.h1[slot] === a && this.h2[slot] === b) return this.recNo[slot]!;
    }
  }

  private grow(): void {
    const { h1, h2, recNo } = this;
    this.capacity *= 2;
    this.h1 = new Uint32Array(this.capacity);
    this.h2 = new Uint32Array(this.capacity);
    this.recNo = new Uint32Array(this.capacity);
    const mask = this.capacity - 1;
    for (let i = 0; i < h1.length; i++) {
      if (recNo[i] === 0) continue;
      let slot = h1[i]! & mask;
      while (this.recNo[slot] !== 0) slot = (slot + 1) & mask;
      this.h1[slot] = h1[i]!; this.h2[slot] = h2[i]!; this.recNo[slot] = recNo[i]!;
    }
  }
}
