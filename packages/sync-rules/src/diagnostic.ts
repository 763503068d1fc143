/**
 * Diagnostics of a sync config: severity, message (what is wrong and what to do) and a
 * 1-based YAML position range. The collector turns source offsets into lines and columns.
 */
import type { LineCounter } from 'yaml';

/** One problem found in a sync config. Positions are 1-based; the end is exclusive. */
export interface Diagnostic {
  /** `fatal` makes the config unusable; `warning` is informational. */
  severity: 'fatal' | 'warning';
  /** What is wrong and what to do about it. */
  message: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/** A half-open range of offsets in the YAML text. */
export interface SourceRange {
  start: number;
  end: number;
}

/** Thrown while compiling one query or value; the parser turns it into a fatal diagnostic. */
export class CompileError extends Error {
  constructor(
    message: string,
    readonly range: SourceRange,
  ) {
    super(message);
    this.name = 'CompileError';
  }
}

/** Collects diagnostics with positions resolved through the YAML line counter. */
export class DiagnosticCollector {
  readonly diagnostics: Diagnostic[] = [];

  constructor(private readonly lines: LineCounter) {}

  /** Adds a diagnostic for a source range. */
  add(severity: Diagnostic['severity'], message: string, range: SourceRange): void {
    const start = this.lines.linePos(range.start);
    const end = this.lines.linePos(Math.max(range.end, range.start));
    this.diagnostics.push({
      severity,
      message,
      line: start.line,
      column: start.col,
      endLine: end.line,
      endColumn: end.col,
    });
  }

  fatal(message: string, range: SourceRange): void {
    this.add('fatal', message, range);
  }

  warning(message: string, range: SourceRange): void {
    this.add('warning', message, range);
  }

  get hasFatal(): boolean {
    return this.diagnostics.some((d) => d.severity === 'fatal');
  }

  /** Diagnostics sorted by position (stable for equal positions). */
  sorted(): Diagnostic[] {
    return this.diagnostics
      .map((d, i) => ({ d, i }))
      .sort((a, b) => a.d.line - b.d.line || a.d.column - b.d.column || a.i - b.i)
      .map(({ d }) => d);
  }
}
