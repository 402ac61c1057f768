import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startS3Server } from './support/s3-server';
import { startSharedTemporal } from './support/temporal';

/**
 * Test entry point: one Temporal server and one S3 server shared by every test file (starting them per file costs
 * more than the tests on a 2-core machine), announced so the output says which servers ran.
 */
async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const files =
    args.length > 0
      ? args
      : fs
          .readdirSync(__dirname)
          .filter((f) => f.endsWith('.test.ts'))
          .sort()
          .map((f) => path.join('test', f));
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-test-'));
  const temporal = await startSharedTemporal(path.join(scratch, 'temporal.db'));
  const s3 = await startS3Server();
  const env = {
    ...process.env,
    // The AWS SDK's notice about its future Node.js support would repeat in every suite that builds a client.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    FLYWHEEL_TEST_TEMPORAL_ADDRESS: temporal.address,
    FLYWHEEL_TEST_TEMPORAL_KIND: temporal.kind,
    FLYWHEEL_TEST_S3_ENDPOINT: s3.endpoint,
    FLYWHEEL_TEST_S3_KIND: s3.kind,
    FLYWHEEL_TEST_S3_ACCESS_KEY: s3.accessKeyId,
    FLYWHEEL_TEST_S3_SECRET: s3.secretAccessKey,
    FLYWHEEL_TEST_S3_CHECKSUMS: s3.checksums,
  };
  const code = await new Promise<number>((resolve) => {
    // Its own process group, so the whole run (the test files' processes too) can be stopped at once.
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', '--test', ...files], {
      stdio: 'inherit',
      env,
      detached: true,
    });
    const stopAll = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    };
    const forward = (signal: NodeJS.Signals) => () => stopAll(signal);
    process.on('SIGINT', forward('SIGINT')).on('SIGTERM', forward('SIGTERM'));
    // A test has its own timeout, but a test file that never exits after its last test would hang the run silently.
    const limitS = Number(process.env.FLYWHEEL_TEST_RUN_TIMEOUT_S ?? 3600);
    const watchdog = setTimeout(() => {
      console.error(
        `[flywheel test] the run is still going after ${limitS} s (FLYWHEEL_TEST_RUN_TIMEOUT_S): stopping it`,
      );
      stopAll('SIGKILL');
    }, limitS * 1000);
    child.on('exit', (c, signal) => {
      clearTimeout(watchdog);
      resolve(c ?? (signal ? 1 : 0));
    });
  });
  await s3.stop();
  await temporal.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
  console.log(`[flywheel test] servers used: Temporal ${temporal.kind}, S3 ${s3.kind}`);
  return code;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('[flywheel test] could not start the test servers:', err);
    process.exit(1);
  },
);
