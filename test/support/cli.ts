import { spawn } from 'node:child_process';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');

/** `flywheel ARGS` as a child process (its own SDK runtime), with `env` over this process's environment. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  opts: { cwd?: string } = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'flywheel.js'), ...args], {
      cwd: opts.cwd ?? root,
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
