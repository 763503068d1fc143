/**
 * Bulk writes with COPY ... FROM STDIN (text format). Rows are encoded straight into large
 * Buffers (`CopyBuffer`) instead of one JS string per line: the bytes a flush sends are then
 * held outside the JS heap (no per-row strings surviving into the old generation, so little
 * GC), and a flush of thousands of ops is one CopyData message per buffer. Text escaping
 * follows the Postgres COPY text format.
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

const NEEDS_ESCAPE = /[\\\t\n\r]/;
const ESCAPES = /[\\\t\n\r]/g;

function escapeText(value: string): string {
  return value.replace(ESCAPES, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

const UNESCAPES = /\\(.)/gs;

/** Reverses COPY text escaping (of a field written by `CopyBuffer.text`). */
export function unescapeCopyText(value: string): string {
  if (!value.includes('\\')) return value;
  return value.replace(UNESCAPES, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c));
}

/** One field in COPY text format; `null`/`undefined` is `\N`. */
export function copyField(value: string | number | bigint | null | undefined): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value !== 'string') return String(value);
  return NEEDS_ESCAPE.test(value) ? escapeText(value) : value;
}

/**
 * `Buffer#utf8Write`: what `Buffer#write` calls after normalising its arguments; that wrapper
 * costs as much as the copy for the short strings written here.
 */
const utf8Write: (buf: Buffer, value: string, offset: number) => number =
  typeof (Buffer.prototype as { utf8Write?: unknown }).utf8Write === 'function'
    ? (buf, value, offset) => (buf as unknown as { utf8Write(v: string, o: number): number }).utf8Write(value, offset)
    : (buf, value, offset) => buf.write(value, offset);

const TAB = 9;
const NEWLINE = 10;
const MINUS = 45;
const ZERO = 48;

/**
 * A growable byte buffer of COPY text. Writers append fields and separators; `bytes()` is the
 * written prefix. Not thread-safe, not reusable while a COPY it fed is in flight.
 */
export class CopyBuffer {
  private buf: Buffer;
  /** Bytes written. */
  length = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(256, initialBytes));
  }

  private ensure(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < needed) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** A text field, escaped for COPY (no separator). */
  text(value: string): this {
    this.writeText(value);
    return this;
  }

  /** Like `text`; returns whether the value needed escaping (the bytes differ from its UTF-8). */
  writeText(value: string): boolean {
    const escape = NEEDS_ESCAPE.test(value);
    const v = escape ? escapeText(value) : value;
    this.ensure(v.length * 3);
    this.length += utf8Write(this.buf, v, this.length);
    return escape;
  }

  /** `count` ASCII zeros: a fixed-width placeholder for a number filled in later (`fillNumber`). */
  zeros(count: number): this {
    this.ensure(count);
    this.buf.fill(ZERO, this.length, this.length + count);
    this.length += count;
    return this;
  }

  /**
   * Writes a non-negative safe integer right-aligned into the `width` bytes at `at`, which hold
   * zeros (see `zeros`), so the field reads as the number with leading zeros.
   */
  fillNumber(at: number, width: number, value: number): void {
    const b = this.buf;
    let pos = at + width;
    let n = value;
    while (n >= 10) {
      const q = Math.floor(n / 10);
      b[--pos] = ZERO + (n - q * 10);
      n = q;
    }
    b[--pos] = ZERO + n;
  }

  /** Writes decimal digits (at most `width`) right-aligned into the zeros at `at`. */
  fillDigits(at: number, width: number, digits: string): void {
    this.buf.write(digits, at + width - digits.length, 'latin1');
  }

  /** Bytes `[start, end)` (a view; valid until the next write). */
  view(start: number, end: number): Buffer {
    return this.buf.subarray(start, end);
  }

  /** Index of the first tab or newline at or after `start`. */
  indexOfTab(start: number): number {
    const b = this.buf;
    let i = start;
    while (i < this.length && b[i] !== TAB && b[i] !== NEWLINE) i++;
    return i;
  }

  /** The (still escaped) field starting at `start`. */
  field(start: number): string {
    return this.buf.toString('utf8', start, this.indexOfTab(start));
  }

  /** Text known to need no escaping (separators, `\N`, pre-escaped constants, whole encoded lines). */
  raw(value: string): this {
    this.ensure(value.length * 3);
    this.length += utf8Write(this.buf, value, this.length);
    return this;
  }

  /** A safe integer in decimal, without allocating a string. */
  int(value: number): this {
    this.ensure(21);
    const b = this.buf;
    let n = value;
    if (n < 0) {
      b[this.length++] = MINUS;
      n = -n;
    }
    if (n < 10) {
      b[this.length++] = ZERO + n;
      return this;
    }
    let digits = 1;
    for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
    let at = this.length + digits;
    this.length = at;
    while (n >= 10) {
      const q = Math.floor(n / 10);
      b[--at] = ZERO + (n - q * 10);
      n = q;
    }
    b[--at] = ZERO + n;
    return this;
  }

  tab(): this {
    this.ensure(1);
    this.buf[this.length++] = TAB;
    return this;
  }

  newline(): this {
    this.ensure(1);
    this.buf[this.length++] = NEWLINE;
    return this;
  }

  /** Appends bytes `[start, end)` of another buffer. */
  copyFrom(source: CopyBuffer, start: number, end: number): this {
    this.ensure(end - start);
    source.buf.copy(this.buf, this.length, start, end);
    this.length += end - start;
    return this;
  }

  /** Drops everything written after `length` (undoes a partly encoded row). */
  truncate(length: number): void {
    this.length = length;
  }

  /** The written bytes (a view; valid until the next write). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** Streams encoded COPY text (whole lines) into `COPY <target> FROM STDIN`. */
export async function copyBuffers(
  client: pg.ClientBase,
  target: string,
  buffers: readonly (CopyBuffer | undefined)[],
): Promise<void> {
  const chunks = buffers.filter((b): b is CopyBuffer => b !== undefined && b.length > 0).map((b) => b.bytes());
  if (chunks.length === 0) return;
  const stream = client.query(copyFrom(`COPY ${target} FROM STDIN`));
  await pipeline(Readable.from(chunks), stream);
}
