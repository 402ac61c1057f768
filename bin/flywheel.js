#!/usr/bin/env node
// Runs the TypeScript sources directly, so `npx flywheel` works in a checkout right after `npm install`.
require('tsx/cjs');
// `flywheel plan | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
const { main } = require('../app/cli.ts');
main(process.argv).then((code) => process.exit(code));
