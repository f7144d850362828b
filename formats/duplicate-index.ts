// Duplicate-record detection within one file (E303): a 64-bit fingerprint of the key bytes in an
// open-addressing table (linear probing), with the record number of the first occurrence.
// A false duplicate needs two different keys with the same 64-bit fingerprint (about 1 in 10^7
// for a file of ten million records).
//
// Laid out for the cache: a file's keys are all different, so nearly every add lands on a slot
// no other record touched, somewhere in a table larger than the caches. Whether a slot is taken
// is one bit (the bitmap of a million-record file fits in the L2 cache), the first half of each
// fingerprint sits in an array of its own, and the second half and the record number, which are
// only read when the first half matches, in a third; the writes of a new entry do not stall.

export class DuplicateIndex {
  private capacity: number;
  /** bit i set: slot i holds an entry */
  private used: Uint32Array;
  /** slot i: first hash */
  private first: Uint32Array;
  /** slot i: [2i] second hash, [2i + 1] record number */
  private rest: Uint32Array;
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
    this.used = new Uint32Array(cap >>> 5);
    this.first = new Uint32Array(cap);
    this.rest = new Uint32Array(cap * 2);
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
    const { used, first, rest } = this;
    for (let slot = a & mask; ; slot = (slot + 1) & mask) {
      const w = slot >>> 5, bit = 1 << (slot & 31);
      if ((used[w]! & bit) === 0) {
        used[w] = used[w]! | bit;
        first[slot] = a; rest[2 * slot] = b; rest[2 * slot + 1] = recordNo;
        this.size++;
        return 0;
      }
      if (first[slot] === a && rest[2 * slot] === b) return rest[2 * slot + 1]!;
    }
  }

  private grow(): void {
    const { used: oldUsed, first: oldFirst, rest: oldRest, capacity: oldCap } = this;
    this.capacity *= 2;
    const cap = this.capacity;
    const mask = cap - 1;
    const used = (this.used = new Uint32Array(cap >>> 5));
    const first = (this.first = new Uint32Array(cap));
    const rest = (this.rest = new Uint32Array(cap * 2));
    for (let i = 0; i < oldCap; i++) {
      if ((oldUsed[i >>> 5]! & (1 << (i & 31))) === 0) continue;
      let slot = oldFirst[i]! & mask;
      while ((used[slot >>> 5]! & (1 << (slot & 31))) !== 0) slot = (slot + 1) & mask;
      used[slot >>> 5] = used[slot >>> 5]! | (1 << (slot & 31));
      first[slot] = oldFirst[i]!; rest[2 * slot] = oldRest[2 * i]!; rest[2 * slot + 1] = oldRest[2 * i + 1]!;
    }
  }
}
