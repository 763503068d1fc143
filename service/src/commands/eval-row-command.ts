/**
 * `bucketsync eval-row <sync-config.yaml> --table <schema.table | table> --row '<json>'`:
 * prints the row's bucket tuples and parameter-index entries, one JSON object per line.
 */
import { parseJsonRow, rowToJson, serializeParameterLookup, type SourceTableRef } from '@bucketsync/sync-rules';
import { jsonOption, loadSyncConfig, parseCommandArguments, runCommand, UsageError } from './command-arguments.js';

export const EVAL_ROW_USAGE = "bucketsync eval-row <sync-config.yaml> --table <schema.table | table> --row '<json>'";

/** Parses `schema.table` or `table` (schema `public`). */
export function parseTableOption(text: string): SourceTableRef {
  const parts = text.split('.');
  if (parts.length > 2 || parts.some((p) => p === ''))
    throw new UsageError(`--table "${text}" is not schema.table or table`);
  return parts.length === 2 ? { schema: parts[0]!, name: parts[1]! } : { schema: 'public', name: parts[0]! };
}

/** Runs the eval-row command. */
export function evalRowCommand(args: string[]): Promise<number> {
  return runCommand('eval-row', EVAL_ROW_USAGE, () => {
    const { file, options } = parseCommandArguments(args, ['table', 'row']);
    const tableText = options.get('table');
    const rowText = options.get('row');
    if (tableText === undefined) throw new UsageError('missing --table');
    if (rowText === undefined) throw new UsageError('missing --row');
    const table = parseTableOption(tableText);
    const row = jsonOption('row', rowText, parseJsonRow);
    const config = loadSyncConfig(file);
    if (!config) return 1;
    if (!config.tableIsRelevant(table)) {
      process.stderr.write(`note: ${table.schema}.${table.name} is not read by any data or parameter query.\n`);
    }
    for (const item of config.evaluateRow(table, row)) {
      if ('error' in item) {
        process.stdout.write(`${JSON.stringify({ error: item.error })}\n`);
        continue;
      }
      const line =
        `{"bucket":${JSON.stringify(item.bucket)},"table":${JSON.stringify(item.table)},` +
        `"id":${JSON.stringify(item.id)},"data":${rowToJson(item.data)}}`;
      process.stdout.write(`${line}\n`);
    }
    for (const entry of config.evaluateParameterRow(table, row)) {
      if ('error' in entry) {
        process.stdout.write(`${JSON.stringify({ error: entry.error })}\n`);
        continue;
      }
      const outputs = entry.outputs.map((o) => rowToJson(o)).join(',');
      process.stdout.write(`{"lookup":${serializeParameterLookup(entry.lookup)},"outputs":[${outputs}]}\n`);
    }
    return 0;
  });
}
