/**
 * What a write batch knows about the current-row records of a table, so a bulk load does not
 * look up every row it writes (the insert-if-absent / diff check).
 *
 * The claim: "every replica key that `current_data` holds for table T is in `hashes`", valid
 * while `source_tables.rows_version` of T still equals `version`. A key whose hash is not in
 * the set is then provably absent (no live record, no tombstone), so the flush writes it as a
 * fresh row without reading storage; a key whose hash is in the set (written earlier, or a
 * 32-bit hash collision) is looked up as before.
 *
 * Why this is race-free (architecture.md section 4, the resurrected-delete race): every
 * statement that inserts or rewrites `current_data` rows runs in a flush under the config row
 * lock and bumps `rows_version` of each table it touched, in the same transaction. A batch
 * checks the version under that same lock before trusting its set, and only adopts the
 * version it bumped itself after its transaction committed. So a tombstone written by a
 * streamed delete between a snapshot read and its write has bumped the version, the snapshot
 * batch sees a version it does not know, drops its set and looks every key up. A set starts
 * empty only when a probe under the lock finds no row of the table at all. Removing rows
 * (purge, drop, cleanup) cannot break the claim, so it does not bump the version.
 */

/** Beyond this many keys per table a batch stops tracking (bounded memory: 4 bytes a slot). */
export const MAX_TRACKED_KEYS = 4_000_000;

/** 32-bit FNV-1a (with a final mix) over the UTF-16 code units of a key; never 0 (0 marks an empty slot). */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h === 0 ? 1 : h >>> 0;
}

/** An open-addressing set of 32-bit hashes in a typed array. */
export class HashSet32 {
  private slots: Uint32Array;
  private mask: number;
  size = 0;

  constructor(capacity = 1024) {
    let n = 1024;
    while (n < capacity * 2) n *= 2;
    this.slots = new Uint32Array(n);
    this.mask = n - 1;
  }

  has(hash: number): boolean {
    const slots = this.slots;
    let i = hash & this.mask;
    for (;;) {
      const v = slots[i]!;
      if (v === hash) return true;
      if (v === 0) return false;
      i = (i + 1) & this.mask;
    }
  }

  add(hash: number): void {
    if ((this.size + 1) * 2 > this.slots.length) this.grow();
    const slots = this.slots;
    let i = hash & this.mask;
    for (;;) {
      const v = slots[i]!;
      if (v === hash) return;
      if (v === 0) {
        slots[i] = hash;
        this.size++;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  clear(): void {
    this.slots.fill(0);
    this.size = 0;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.mask = this.slots.length - 1;
    this.size = 0;
    for (const v of old) if (v !== 0) this.add(v);
  }
}

/** A batch's knowledge of one table's stored keys (see the file comment). */
export interface TrackedKeys {
  /** `source_tables.rows_version` the set is valid for. */
  version: string;
  readonly hashes: HashSet32;
}
