// examples/axum_echo over https in headless Chromium, driven by playwright-core.
// Run by scripts/browser_axum.sh, which builds the example, makes a certificate, starts the
// server (--tls) and installs playwright-core next to a copy of this file.
//
// Environment:
//   ECHO_URL   https://127.0.0.1:<port>/ of the running axum_echo (required)
//   CERT_SPKI  base64 SHA-256 of the certificate's public key (for --ignore-certificate-errors-spki-list)
//   CHROMIUM   the browser (default /usr/bin/chromium)
//   OUT_DIR    where the screenshot and the report go (default ./ci-output)
//
// The page opens wss://<host>/ws and the test checks the echo of what it sends. It then reads
// the server's GET /stats, which counts WebSockets by the HTTP they came over (an HTTP/2
// extended CONNECT carries `:protocol websocket`, RFC 8441), and the page's own protocol
// (PerformanceNavigationTiming.nextHopProtocol), and REPORTS whether Chromium opened the
// WebSocket over HTTP/2. The echo must work either way; which HTTP was used is reported, not
// required (Chromium decides). Exit 0 when the echo worked.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const ECHO_URL = process.env.ECHO_URL;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT_DIR = path.resolve(process.env.OUT_DIR || 'ci-output');
if (!ECHO_URL) {
  console.error('ECHO_URL must be set');
  process.exit(2);
}
fs.mkdirSync(OUT_DIR, { recursive: true });
const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

const args = ['--no-sandbox', '--disable-gpu', '--disable-quic'];
// Trust this certificate's key (not all certificate errors): the connection counts as
// secure, so Chromium treats it as any https origin (HTTP/2 and its connection reuse included).
if (process.env.CERT_SPKI) args.push(`--ignore-certificate-errors-spki-list=${process.env.CERT_SPKI}`);

let browser;
let failed = false;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000, args });
  const context = await browser.newContext({ ignoreHTTPSErrors: !process.env.CERT_SPKI, viewport: { width: 820, height: 480 } });
  const page = await context.newPage();
  page.on('console', (m) => log(`console: ${m.text()}`));
  log(`goto ${ECHO_URL}`);
  await page.goto(ECHO_URL, { timeout: 30_000 });
  const pageProtocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0]?.nextHopProtocol || 'unknown');
  log(`page loaded over ${pageProtocol}`);
  await page.waitForFunction(() => window.ws && window.ws.readyState === 1, null, { timeout: 15_000 });
  const info = await page.evaluate(() => ({ protocol: window.ws.protocol, extensions: window.ws.extensions }));
  log(`WebSocket OPEN: subprotocol=${info.protocol} extensions=${info.extensions}`);
  const messages = ['hello from Chromium', 'ü'.repeat(1000), 'x'.repeat(70_000)];
  for (const m of messages) await page.evaluate((m) => window.ws.send(m), m);
  await page.waitForFunction((n) => window.echoes.length >= n, messages.length, { timeout: 15_000 });
  const echoes = await page.evaluate(() => window.echoes);
  for (let i = 0; i < messages.length; i++) {
    if (echoes[i] !== messages[i]) throw new Error(`echo ${i} differs (${String(echoes[i]).slice(0, 40)}…)`);
  }
  log(`${messages.length} messages echoed`);
  if (info.protocol !== 'echo') throw new Error(`subprotocol: expected echo, got '${info.protocol}'`);
  if (!info.extensions.includes('permessage-deflate')) throw new Error(`extensions: expected permessage-deflate, got '${info.extensions}'`);
  await page.screenshot({ path: path.join(OUT_DIR, 'axum-echo.png') });
  const stats = await page.evaluate(async () => (await fetch('/stats')).json());
  log(`server /stats: ${JSON.stringify(stats)}`);
  const overH2 = stats.websocket_http2 >= 1;
  if (stats.websocket_http1 + stats.websocket_http2 < 1) throw new Error('the server counted no WebSocket');
  const report = [
    `page over: ${pageProtocol}`,
    `WebSocket over HTTP/2 (RFC 8441 extended CONNECT, :protocol websocket): ${overH2 ? 'YES' : 'NO'}`,
    `server counts: websocket_http1=${stats.websocket_http1} websocket_http2=${stats.websocket_http2} connections_h2_alpn=${stats.connections_h2_alpn}`,
    `browser: ${browser.version()}`,
  ].join('\n');
  fs.writeFileSync(path.join(OUT_DIR, 'axum-echo-report.txt'), report + '\n');
  console.log('\n==== Chromium and RFC 8441 ====\n' + report + '\n===============================');
  await page.evaluate(() => window.ws.close(1000, 'done'));
  await page.waitForFunction(() => window.ws.readyState === 3, null, { timeout: 10_000 });
} catch (e) {
  failed = true;
  console.error(`axum-echo browser test FAILED: ${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(failed ? 1 : 0);
