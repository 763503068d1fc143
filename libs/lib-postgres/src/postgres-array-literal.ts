/**
 * Parses Postgres array literals (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`) as they
 * appear in text output (COPY, pgoutput tuples, ::text). Elements come back as raw text or
 * null; nesting is preserved. One pass over the string, no regular expressions.
 */

export type ArrayLiteralElement = string | null | ArrayLiteralElement[];

export class ArrayLiteralError extends Error {
  constructor(literal: string, position: number, what: string) {
    super(`invalid array literal at offset ${position} (${what}): ${literal.slice(0, 80)}`);
    this.name = 'ArrayLiteralError';
  }
}

/**
 * Parses one array literal. `delimiter` is the element type's typdelim (`,` for everything
 * but `box`, which uses `;`). An optional dimension prefix (`[1:2]={...}`) is skipped.
 */
export function parseArrayLiteral(literal: string, delimiter = ','): ArrayLiteralElement[] {
  let i = 0;
  if (literal[0] === '[') {
    const eq = literal.indexOf('=');
    if (eq < 0) throw new ArrayLiteralError(literal, 0, 'dimension prefix without "="');
    i = eq + 1;
  }

  const parseArray = (): ArrayLiteralElement[] => {
    if (literal[i] !== '{') throw new ArrayLiteralError(literal, i, 'expected "{"');
    i++;
    const out: ArrayLiteralElement[] = [];
    if (literal[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      const ch = literal[i];
      if (ch === '{') {
        out.push(parseArray());
      } else if (ch === '"') {
        i++;
        let value = '';
        let start = i;
        for (;;) {
          const c = literal[i];
          if (c === undefined) throw new ArrayLiteralError(literal, i, 'unterminated quoted element');
          if (c === '\\') {
            value += literal.slice(start, i) + (literal[i + 1] ?? '');
            i += 2;
            start = i;
          } else if (c === '"') {
            value += literal.slice(start, i);
            i++;
            break;
          } else {
            i++;
          }
        }
        out.push(value);
      } else {
        const start = i;
        while (i < literal.length && literal[i] !== delimiter && literal[i] !== '}') i++;
        const raw = literal.slice(start, i).trim();
        out.push(raw === 'NULL' ? null : raw);
      }
      const next = literal[i];
      if (next === delimiter) {
        i++;
      } else if (next === '}') {
        i++;
        return out;
      } else {
        throw new ArrayLiteralError(literal, i, `expected "${delimiter}" or "}"`);
      }
    }
  };

  const result = parseArray();
  if (i !== literal.length) throw new ArrayLiteralError(literal, i, 'trailing characters');
  return result;
}
