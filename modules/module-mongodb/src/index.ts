export { mongodbModule } from './mongodb-module.js';
