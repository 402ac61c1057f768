#!/usr/bin/env node
// `npm test`: starts one Temporal dev server and one S3-compatible server for the whole run, then node's test runner.
require('tsx/cjs');
require('../test/run.ts');
