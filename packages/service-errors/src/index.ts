export { ERROR_CATALOGUE, ErrorCode, type CatalogueEntry } from './error-catalogue.js';
export { isRetryable, ServiceError, type ServiceErrorOptions } from './service-error.js';
