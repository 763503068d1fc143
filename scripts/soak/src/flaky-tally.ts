/**
 * Counts what the flaky clients saw: connections, where they really dropped, bytes read per
 * encoding and compression, and every other ending sorted into expected (a 429 over a cap) or a
 * failure (a 5xx, another error status, a broken connection, a stream the service ended). Pure.
 */
import type { FlakyAnswer, FlakyOutcome } from './flaky-client.js';
import { DROP_KINDS, type DropKind } from './flaky-plan.js';
import { summarizeLag, type LagSummary } from './soak-statistics.js';

/** Streams of one kind (an encoding, or gzip / identity) and how many were dropped mid-data. */
export interface StreamKindFigures {
  streams: number;
  /** 200 answers. */
  answered: number;
  /** Dropped by the client after reading some body bytes of a 200 stream. */
  midData: number;
  bytes: number;
}

export interface FlakyTallyFigures {
  connections: number;
  /** Drop points chosen. */
  planned: Record<DropKind, number>;
  /** Where drops really happened (a planned point past the end of what was sent ends at the lifetime cap). */
  droppedAt: { beforeHeaders: number; afterHeaders: number; midData: number };
  /** Mid-data drops after more than 64 KiB: well past the checkpoint line, inside the bucket data. */
  midDataOver64KiB: number;
  /** Largest body read before a drop. */
  maxBytesBeforeDrop: number;
  /** 200 streams dropped at the lifetime cap before their planned point (the service sent less, or slower). */
  cappedByLifetime: number;
  /** Connections dropped before the headers although their plan was a later point: the answer took longer than the lifetime. */
  headersLate: number;
  bytesRead: number;
  byEncoding: { ndjson: StreamKindFigures; bson: StreamKindFigures };
  byCompression: { gzip: StreamKindFigures; identity: StreamKindFigures };
  /** Stream statuses (`none` where no headers arrived). */
  statuses: Record<string, number>;
  writeCheckpoints: { calls: number; ok: number; limited: number; unanswered: number; failed: number };
  /** Expected non-successes by kind (`HTTP 429 PSYNC_S2304`: over the stream cap). */
  expected: Record<string, number>;
  /** Failures by kind. */
  errors: Record<string, number>;
  failures: number;
  /** The first failure of each kind, with the plan that met it. */
  failureExamples: Record<string, string>;
  /** Time from the start to the response headers of 200 answers (ms): how far behind the service answers. */
  headersMs: LagSummary;
}

const kindFigures = (): StreamKindFigures => ({ streams: 0, answered: 0, midData: 0, bytes: 0 });

/** How a stream or write-checkpoint answer counts: undefined when fine. */
export function classifyStream(outcome: FlakyOutcome): { expected: string } | { failure: string } | undefined {
  const { status, code } = outcome;
  if (status === undefined) {
    return outcome.end === 'error' ? { failure: `${outcome.error} before the response headers` } : undefined;
  }
  if (status === 429) return { expected: `stream: HTTP 429 ${code ?? ''}`.trim() };
  if (status !== 200) return { failure: `stream: HTTP ${status} ${code ?? ''}`.trim() };
  if (outcome.answeredAsAsked === false) return { failure: 'stream: answered in another encoding than asked' };
  if (outcome.end === 'service-ended') return { failure: 'stream: ended by the service' };
  if (outcome.end === 'error') return { failure: `stream: ${outcome.error} after the headers` };
  return undefined;
}

export function classifyWriteCheckpoint(answer: FlakyAnswer): { expected: string } | { failure: string } | undefined {
  if (answer.status === 200) return undefined;
  if (answer.status === 429) return { expected: `write checkpoint: HTTP 429 ${answer.code ?? ''}`.trim() };
  if (answer.status !== undefined)
    return { failure: `write checkpoint: HTTP ${answer.status} ${answer.code ?? ''}`.trim() };
  if (answer.error) return { failure: `write checkpoint: ${answer.error}` };
  return { expected: 'write checkpoint: no answer within the lifetime' };
}

export class FlakyTally {
  readonly figures: FlakyTallyFigures = {
    connections: 0,
    planned: Object.fromEntries(DROP_KINDS.map((k) => [k, 0])) as Record<DropKind, number>,
    droppedAt: { beforeHeaders: 0, afterHeaders: 0, midData: 0 },
    midDataOver64KiB: 0,
    maxBytesBeforeDrop: 0,
    cappedByLifetime: 0,
    headersLate: 0,
    bytesRead: 0,
    byEncoding: { ndjson: kindFigures(), bson: kindFigures() },
    byCompression: { gzip: kindFigures(), identity: kindFigures() },
    statuses: {},
    writeCheckpoints: { calls: 0, ok: 0, limited: 0, unanswered: 0, failed: 0 },
    expected: {},
    errors: {},
    failures: 0,
    failureExamples: {},
    headersMs: summarizeLag([]),
  };
  private readonly headerTimes: number[] = [];

  /** The figures, with the time-to-headers summary brought up to date. */
  summary(): FlakyTallyFigures {
    this.figures.headersMs = summarizeLag(this.headerTimes);
    return this.figures;
  }

  record(outcome: FlakyOutcome): void {
    const f = this.figures;
    const { plan } = outcome;
    f.connections++;
    f.planned[plan.drop.kind]++;
    f.bytesRead += outcome.bytes;
    const status = outcome.status === undefined ? 'none' : String(outcome.status);
    f.statuses[status] = (f.statuses[status] ?? 0) + 1;
    const midData = outcome.droppedAt === 'mid-data' && outcome.status === 200;
    for (const kind of [f.byEncoding[plan.encoding], f.byCompression[plan.gzip ? 'gzip' : 'identity']]) {
      kind.streams++;
      kind.bytes += outcome.bytes;
      if (outcome.status === 200) kind.answered++;
      if (midData) kind.midData++;
    }
    if (outcome.droppedAt === 'before-headers') {
      f.droppedAt.beforeHeaders++;
      if (plan.drop.kind !== 'before-headers') f.headersLate++;
    } else if (outcome.droppedAt === 'after-headers') f.droppedAt.afterHeaders++;
    else if (outcome.droppedAt === 'mid-data') f.droppedAt.midData++;
    if (midData && outcome.bytes > 64 * 1024) f.midDataOver64KiB++;
    if (outcome.end === 'dropped') f.maxBytesBeforeDrop = Math.max(f.maxBytesBeforeDrop, outcome.bytes);
    if (outcome.cappedByLifetime) f.cappedByLifetime++;
    if (outcome.status === 200 && outcome.headersMs !== undefined) this.headerTimes.push(outcome.headersMs);
    this.count(classifyStream(outcome), outcome);

    const wc = outcome.writeCheckpoint;
    if (wc) {
      f.writeCheckpoints.calls++;
      const verdict = classifyWriteCheckpoint(wc);
      if (!verdict) f.writeCheckpoints.ok++;
      else if ('failure' in verdict) f.writeCheckpoints.failed++;
      else if (wc.status === 429) f.writeCheckpoints.limited++;
      else f.writeCheckpoints.unanswered++;
      this.count(verdict, outcome);
    }
  }

  private count(verdict: { expected: string } | { failure: string } | undefined, outcome: FlakyOutcome): void {
    const f = this.figures;
    if (!verdict) return;
    if ('expected' in verdict) {
      f.expected[verdict.expected] = (f.expected[verdict.expected] ?? 0) + 1;
      return;
    }
    f.errors[verdict.failure] = (f.errors[verdict.failure] ?? 0) + 1;
    f.failures++;
    if (!(verdict.failure in f.failureExamples)) {
      const p = outcome.plan;
      f.failureExamples[verdict.failure] =
        `u${p.user}, ${p.encoding}${p.gzip ? ' gzip' : ''}, drop ${JSON.stringify(p.drop)}, ` +
        `${outcome.bytes} bytes read, connected after ${outcome.connectedMs ?? '-'} ms, ended after ${outcome.durationMs} ms`;
    }
  }
}
