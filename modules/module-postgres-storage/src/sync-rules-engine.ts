/**
 * The sync config engine storage evaluates rows with: `@bucketsync/sync-rules` adapted to
 * core's `StorageSyncConfigEngine` (fatal diagnostics become SYNC_CONFIG_INVALID).
 */
import type { StorageSyncConfigEngine } from '@bucketsync/service-core';
import { ErrorCode, ServiceError } from '@bucketsync/service-errors';
import { parseSyncConfig, rowToJson, serializeParameterLookup } from '@bucketsync/sync-rules';

/** The production engine, backed by `@bucketsync/sync-rules`. */
export function syncRulesEngine(options: { defaultSchema?: string } = {}): StorageSyncConfigEngine {
  return {
    parse(content, { configId }) {
      const { config, diagnostics } = parseSyncConfig(content, {
        configId,
        defaultSchema: options.defaultSchema ?? 'public',
      });
      const fatal = diagnostics.filter((d) => d.severity === 'fatal');
      if (!config || fatal.length > 0) {
        const lines = fatal.map((d) => `${d.line}:${d.column} ${d.message}`);
        throw new ServiceError(ErrorCode.SYNC_CONFIG_INVALID, lines.join('; ') || 'no config produced');
      }
      return config;
    },
    serializeParameterLookup: (lookup) => serializeParameterLookup({ ...lookup, values: [...lookup.values] }),
    rowToJson: (row) => rowToJson(row),
  };
}
