export { mssqlModule } from './mssql-module.js';
