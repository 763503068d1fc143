/**
 * Maps offsets inside a YAML scalar's value back to the YAML text, so SQL errors point at the
 * right line and column also inside block scalars (`|`, `>`), folded plain scalars and quoted
 * strings: value and source characters are aligned greedily, skipping indentation and escapes.
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

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

/** Builds the value -> YAML offset map of a scalar node. */
export function scalarSourceText(node: Scalar, yamlText: string): SourceText {
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
  const map = new Int32Array(value.length + 1);
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (isSpace(c)) {
      if (doubleQuoted && yamlText[j] === '\\' && j + 1 < valueEnd) {
        map[i] = j;
        j += 2;
      } else {
        map[i] = j;
        if (j < valueEnd && isSpace(yamlText[j])) j++;
      }
      continue;
    }
    let k = j;
    while (k < valueEnd && yamlText[k] !== c) k++;
    if (k >= valueEnd) k = Math.min(j, valueEnd);
    map[i] = k;
    j = k + 1;
  }
  map[value.length] = Math.min(j, valueEnd);
  const range = { start, end: valueEnd };
  const sourceOffset = (offset: number): number => map[Math.max(0, Math.min(offset, value.length))]!;
  return {
    text: value,
    range,
    sourceOffset,
    sourceRange(from: number, to: number): SourceRange {
      if (to <= from) return { start: sourceOffset(from), end: sourceOffset(from) };
      // The end maps after the last character, so a range never spills into the next line's indentation.
      return { start: sourceOffset(from), end: sourceOffset(to - 1) + 1 };
    },
  };
}
