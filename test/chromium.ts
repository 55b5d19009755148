// Launching Debian's Chromium for the browser tests and benchmarks (playwright-core, which never downloads a
// browser). Headless, no sandbox (CI runs as root), WebGPU on SwiftShader allowed, nothing that reaches the network,
// and a fresh profile each launch.

import { existsSync } from 'node:fs';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';

export const CHROMIUM = process.env['REDRAFTER_CHROMIUM'] ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic',
];

/**
 * node:test's skip option: false when Chromium is there; outside CI a reason to skip; in CI (CI=true) a missing
 * browser is a failure, not a skip, since .ci/run installs it.
 */
export function chromiumMissing(): string | false {
  if (existsSync(CHROMIUM)) return false;
  const reason = `${CHROMIUM} not found: apt-get install -y --no-install-recommends chromium (or set REDRAFTER_CHROMIUM)`;
  if (process.env['CI'] === 'true') throw new Error(`browser tests: ${reason}`);
  return reason;
}

/**
 * A headless Chromium. Playwright's launch gives it a fresh temporary user-data dir (removed when it closes), so no
 * Cache Storage or profile state is carried between runs.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS] });
}

/** Opens a page in a new context and collects its console errors and uncaught exceptions. */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message: ConsoleMessage) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  await page.goto(url);
  return { page, errors };
}
