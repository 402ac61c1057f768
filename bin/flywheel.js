#!/usr/bin/env node
// Runs the TypeScript sources directly, so `npx flywheel` works in a checkout right after `npm install`.
require('tsx/cjs');
const { main } = require('../client/cli.ts');
main(process.argv).then((code) => process.exit(code));
