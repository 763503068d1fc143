/**
 * Postgres positions: an LSN (`16/B374D848`) serialised as two zero-padded 8-digit uppercase
 * hex halves (`00000016/B374D848`), so string order is WAL order (docs/glossary.md).
 */

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses `16/B374D848` (as Postgres prints it) into a 64-bit number. */
export function parseLsn(text: string): bigint {
  const match = LSN_TEXT.exec(text);
  if (!match) throw new Error(`not a Postgres LSN: "${text}" (expected the form 16/B374D848)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** The position string of a 64-bit LSN: `00000016/B374D848`. */
export function lsnToPosition(lsn: bigint): string {
  const hi = (lsn >> 32n).toString(16).toUpperCase().padStart(8, '0');
  const lo = (lsn & 0xffffffffn).toString(16).toUpperCase().padStart(8, '0');
  return `${hi}/${lo}`;
}

/** Normalises an LSN as Postgres prints it into a position string. */
export function positionFromLsnText(text: string): string {
  return lsnToPosition(parseLsn(text));
}

/** The LSN a position string stands for. */
export function positionToLsn(position: string): bigint {
  return parseLsn(position);
}

/** The LSN as Postgres accepts it in SQL and replication commands (`16/B374D848`). */
export function lsnToText(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
