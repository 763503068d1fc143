export { postgresModule } from './postgres-module.js';
