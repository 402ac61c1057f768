import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export interface ChromiumFound {
  path: string;
  source: 'CHROMIUM_PATH' | 'system' | 'playwright';
}

const SYSTEM_CHROMIUMS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Chromium for the browser tests: $CHROMIUM_PATH, then the system's (Debian's /usr/bin/chromium), then Playwright's. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): ChromiumFound | { missing: string } {
  if (env.CHROMIUM_PATH) {
    return isExecutable(env.CHROMIUM_PATH)
      ? { path: env.CHROMIUM_PATH, source: 'CHROMIUM_PATH' }
      : { missing: `CHROMIUM_PATH=${env.CHROMIUM_PATH} is not an executable file` };
  }
  const system = SYSTEM_CHROMIUMS.find(isExecutable);
  if (system) return { path: system, source: 'system' };
  try {
    const own = chromium.executablePath();
    if (own && isExecutable(own)) return { path: own, source: 'playwright' };
  } catch {
    // playwright-core without a downloaded browser: nothing more to try.
  }
  return {
    missing:
      'no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH to a Chrome or ' +
      'Chromium binary',
  };
}

/**
 * A headless Chromium, or undefined with the reason printed when none is installed on a developer machine. CI
 * (`FLYWHEEL_REQUIRE_BROWSER=1`, set by .ci/run after installing chromium) fails instead of skipping.
 */
export async function launchChromium(): Promise<{ browser?: Browser; skip?: string }> {
  const found = findChromium();
  if ('missing' in found) {
    if (process.env.FLYWHEEL_REQUIRE_BROWSER === '1') throw new Error(found.missing);
    console.error(`[flywheel test] browser tests skipped: ${found.missing}`);
    return { skip: found.missing };
  }
  const browser = await chromium.launch({
    executablePath: found.path,
    headless: true,
    // Containers run as root without user namespaces; /dev/shm is often too small for Chromium's default.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  return { browser };
}

/**
 * Where a test's screenshot goes: docs/<name> when FLYWHEEL_DOCS_SCREENSHOTS=1 (to refresh the README's images),
 * else a temp folder, so ordinary test runs leave the working tree alone.
 */
export function screenshotPath(name: string): string {
  if (process.env.FLYWHEEL_DOCS_SCREENSHOTS === '1') {
    const docs = path.join(__dirname, '..', '..', 'docs');
    fs.mkdirSync(docs, { recursive: true });
    return path.join(docs, name);
  }
  const dir = path.join(os.tmpdir(), 'flywheel-screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

/** Runs in the page (browser JavaScript, so no DOM types needed here): decodes a PNG and counts its colours. */
const INK_SCRIPT = `async (b64) => {
  const image = new Image();
  image.src = 'data:image/png;base64,' + b64;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, image.width, image.height).data;
  const counts = new Map();
  for (let i = 0; i < data.length; i += 4) {
    const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const pixels = data.length / 4;
  let background = 0;
  for (const n of counts.values()) background = Math.max(background, n);
  return { inked: (pixels - background) / pixels, colors: counts.size };
}`;

/**
 * How much a PNG shows, decoded by the browser itself (no image library needed): the share of pixels that differ
 * from the most common colour, and the number of distinct colours. A blank page scores 0 and 1.
 */
export async function screenshotInk(page: Page, png: Buffer): Promise<{ inked: number; colors: number }> {
  return page.evaluate(`(${INK_SCRIPT})(${JSON.stringify(png.toString('base64'))})`) as Promise<{
    inked: number;
    colors: number;
  }>;
}
