/**
 * A compiled entry of `bucket_definitions`: parameter queries decide a connection's buckets,
 * data queries place rows into them. Bucket ids are `<name>[<parameter values>]`.
 */
import type { DataQuery } from './data-query.js';
import type { ParameterQuery } from './parameter-query.js';

/** A compiled bucket definition. */
export class BucketDefinition {
  readonly kind = 'bucket';

  constructor(
    readonly name: string,
    /** Priority from `priority:` (default 3); `_priority` of a parameter query overrides it for its buckets. */
    readonly priority: number,
    /** Bucket parameter names in bucket id order (the first parameter query's output order). */
    readonly parameterNames: readonly string[],
    readonly parameterQueries: readonly ParameterQuery[],
    readonly dataQueries: readonly DataQuery[],
    /** Bucket id prefix: the name, with `<configId>#` when ids are versioned. */
    readonly bucketPrefix: string,
  ) {}
}
