import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/**
 * The running code's version for provenance: package.json's version, plus `+<commit>` (12 hex digits) when the code
 * runs from a git checkout and git is installed. Computed once per process.
 */
export function codeVersion(): string {
  cached ??= readCodeVersion();
  return cached;
}

function readCodeVersion(): string {
  const root = packageRoot(__dirname);
  if (root === undefined) return '0.0.0';
  let version = '0.0.0';
  try {
    const parsed = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown };
    if (typeof parsed.version === 'string' && parsed.version) version = parsed.version;
  } catch {
    // An unreadable package.json still leaves the commit, which is the more precise half.
  }
  const commit = gitCommit(root);
  return commit === undefined ? version : `${version}+${commit.slice(0, 12)}`;
}

function packageRoot(from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/** HEAD of the checkout at `root` (not of a repository above it); undefined without one, or without git. */
function gitCommit(root: string): string | undefined {
  if (!existsSync(join(root, '.git'))) return undefined;
  try {
    const out = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    }).trim();
    return /^[0-9a-f]{40,64}$/.test(out) ? out : undefined;
  } catch {
    return undefined;
  }
}
