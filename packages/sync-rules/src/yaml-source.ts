/**
 * Maps offsets inside a YAML scalar's value back to the YAML text, so SQL errors point at the
 * right line and column also inside block scalars (`|`, `>`), folded plain scalars and quoted
 * strings. One forward pass: escapes are decoded by length, whitespace is skipped, O(value + source).
 */
import { Scalar } from 'yaml';
import type { SourceRange } from './diagnostic.js';

/** A string value taken from the YAML text, with a way back to YAML offsets. */
export interface SourceText {
  readonly text: string;
  /** YAML offset of the character at `offset` in `text` (`text.length` maps past the end). */
  sourceOffset(offset: number): number;
  /** YAML range of `[start, end)` in `text`. */
  sourceRange(start: number, end: number): SourceRange;
  /** YAML range of the whole scalar. */
  readonly range: SourceRange;
}

/** Counts the loop steps of {@link scalarSourceText}, so tests can check that it stays linear. */
export interface WorkCounter {
  steps: number;
}

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

/**
 * Source length and number of UTF-16 units in the value of the double-quoted escape at `at`
 * (which holds the backslash). An escaped line break adds nothing to the value.
 */
function escapeAt(yamlText: string, at: number): { length: number; units: number } {
  const e = yamlText[at + 1];
  switch (e) {
    case 'x':
      return { length: 4, units: 1 };
    case 'u':
      return { length: 6, units: 1 };
    case 'U': {
      const code = parseInt(yamlText.slice(at + 2, at + 10), 16);
      return { length: 10, units: code > 0xffff ? 2 : 1 };
    }
    case '\n':
      return { length: 2, units: 0 };
    case '\r':
      return { length: yamlText[at + 2] === '\n' ? 3 : 2, units: 0 };
    default:
      return { length: 2, units: 1 };
  }
}

/**
 * Builds the value -> YAML offset map of a scalar node. The source position `j` only moves
 * forward and every step moves `i` (value) or `j` (source), so the cost is linear; `work`
 * (optional) receives the number of steps.
 */
export function scalarSourceText(node: Scalar, yamlText: string, work?: WorkCounter): SourceText {
  const value = String(node.value);
  const [start, valueEnd] = node.range ?? [0, 0];
  let j = start;
  switch (node.type) {
    case Scalar.QUOTE_DOUBLE:
    case Scalar.QUOTE_SINGLE:
      j = start + 1;
      break;
    case Scalar.BLOCK_FOLDED:
    case Scalar.BLOCK_LITERAL: {
      const newline = yamlText.indexOf('\n', start);
      j = newline < 0 ? valueEnd : newline + 1;
      break;
    }
  }
  const doubleQuoted = node.type === Scalar.QUOTE_DOUBLE;
  const singleQuoted = node.type === Scalar.QUOTE_SINGLE;
  const map = new Int32Array(value.length + 1);
  let steps = 0;
  let i = 0;
  while (i < value.length) {
    steps++;
    const c = value[i]!;
    const space = isSpace(c);
    // Indentation, folded line breaks and trimmed trailing spaces have no value character.
    if (!space) {
      while (j < valueEnd && isSpace(yamlText[j])) {
        j++;
        steps++;
      }
    }
    if (doubleQuoted && yamlText[j] === '\\' && j + 1 < valueEnd) {
      const { length, units } = escapeAt(yamlText, j);
      for (let u = 0; u < units && i < value.length; u++) map[i++] = j;
      j = Math.min(j + length, valueEnd);
      continue;
    }
    map[i] = Math.min(j, valueEnd);
    i++;
    if (singleQuoted && c === "'" && yamlText[j] === "'") j += 2;
    else if (!space || isSpace(yamlText[j])) j++;
    j = Math.min(j, valueEnd);
  }
  map[value.length] = Math.min(j, valueEnd);
  if (work) work.steps += steps;
  const range = { start, end: valueEnd };
  const sourceOffset = (offset: number): number => map[Math.max(0, Math.min(offset, value.length))]!;
  return {
    text: value,
    range,
    sourceOffset,
    sourceRange(from: number, to: number): SourceRange {
      if (to <= from) return { start: sourceOffset(from), end: sourceOffset(from) };
      // The end maps after the last character, so a range never spills into the next line's indentation.
      // A value character with no source character (the final line break a block scalar adds at the
      // end of the file) maps to the scalar's end: the range then stops there, not past the text.
      const start = sourceOffset(from);
      return { start, end: Math.max(start, Math.min(sourceOffset(to - 1) + 1, valueEnd)) };
    },
  };
}
