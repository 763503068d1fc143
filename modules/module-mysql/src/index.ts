export { mysqlModule } from './mysql-module.js';
