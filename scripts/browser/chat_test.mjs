// End-to-end test of examples/chat in headless Chromium, driven by playwright-core.
// Run by scripts/browser_test.sh (which installs playwright-core next to a copy of this file).
//
// Environment:
//   CHAT_BIN   the built chat example (required)
//   CHAT_PORT  a free port on 127.0.0.1 (required)
//   CHROMIUM   the browser (default /usr/bin/chromium)
//   OUT_DIR    where screenshots go (default ./ci-output)
//   WORK_DIR   logs, the server's pid file, the browser profile (default .)
//
//   REDIS_SERVER, CHAT_CLUSTER_PORTS  with both: the cluster phase (redis-server on the first of
//              the three comma-separated ports, two chat nodes with --redis on the others)
//
// It starts the server itself (it restarts it mid-test), writes each server pid to
// WORK_DIR/server.pids for the calling script's trap, and exits non-zero on any failure.
// It also serves foreign_origin.html (next to this file) from another loopback port: a page
// of another origin that tries to open a socket to the chat (RFC 6455 §10.2).

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

const CHAT_BIN = process.env.CHAT_BIN;
const PORT = Number(process.env.CHAT_PORT);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OUT_DIR = path.resolve(process.env.OUT_DIR || 'ci-output');
const WORK_DIR = path.resolve(process.env.WORK_DIR || '.');
const URL = `http://127.0.0.1:${PORT}/`;
if (!CHAT_BIN || !PORT) {
  console.error('CHAT_BIN and CHAT_PORT must be set');
  process.exit(2);
}
fs.mkdirSync(OUT_DIR, { recursive: true });

const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

// ---- the server ---------------------------------------------------------------------------
let server = null;
const serverLog = path.join(WORK_DIR, 'chat-server.log');
const pidFile = path.join(WORK_DIR, 'server.pids');

function portOpen() {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: PORT });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// `allowed`: origins the chat allows besides its own (its ORIGIN arguments).
async function startServer(allowed = []) {
  const fd = fs.openSync(serverLog, 'a');
  const child = spawn(CHAT_BIN, [`127.0.0.1:${PORT}`, ...allowed], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  fs.appendFileSync(pidFile, `${child.pid}\n`);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  server = child;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`chat server exited at start (see ${serverLog})`);
    }
    if (await portOpen()) {
      log(`server up (pid ${child.pid}) on ${URL}${allowed.length ? `, also allowing ${allowed.join(' ')}` : ''}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('chat server did not listen within 10 s');
}

async function stopServer() {
  const child = server;
  server = null;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await child.exited;
  clearTimeout(timer);
  log(`server stopped (pid ${child.pid})`);
}

// ---- the chat over TLS ------------------------------------------------------------------------
const TLS_CERT = process.env.CHAT_TLS_CERT;
const TLS_KEY = process.env.CHAT_TLS_KEY;
const TLS_PORT = Number(process.env.CHAT_TLS_PORT);
const TLS_URL = `https://127.0.0.1:${TLS_PORT}/`;
let tlsServer = null;
let tlsBrowser = null;

async function startTlsServer() {
  const fd = fs.openSync(serverLog, 'a');
  tlsServer = spawn(CHAT_BIN, ['--tls', TLS_CERT, TLS_KEY, `127.0.0.1:${TLS_PORT}`], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  fs.appendFileSync(pidFile, `${tlsServer.pid}\n`);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (tlsServer.exitCode !== null) throw new Error(`the TLS chat exited at start (see ${serverLog})`);
    const up = await new Promise((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port: TLS_PORT });
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (up) {
      log(`TLS server up (pid ${tlsServer.pid}) on ${TLS_URL}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the TLS chat did not listen within 10 s');
}

// ---- many nodes over Redis (--redis) ------------------------------------------------------------
const REDIS_SERVER = process.env.REDIS_SERVER;
const CLUSTER_PORTS = (process.env.CHAT_CLUSTER_PORTS || '').split(',').filter(Boolean).map(Number);
const clusterProcs = [];
let clusterBrowser = null;

function waitPort(port, child, what) {
  return (async () => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${what} exited at start (see ${serverLog})`);
      const up = await new Promise((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port });
        c.once('connect', () => { c.destroy(); resolve(true); });
        c.once('error', () => resolve(false));
      });
      if (up) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${what} did not listen on ${port} within 10 s`);
  })();
}

async function startCluster() {
  const [redisPort, ...nodePorts] = CLUSTER_PORTS;
  const spawnLogged = (bin, args) => {
    const fd = fs.openSync(serverLog, 'a');
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    fs.appendFileSync(pidFile, `${child.pid}\n`);
    clusterProcs.push(child);
    return child;
  };
  const redis = spawnLogged(REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', WORK_DIR]);
  await waitPort(redisPort, redis, 'redis-server');
  log(`redis-server up (pid ${redis.pid}) on 127.0.0.1:${redisPort}`);
  for (const port of nodePorts) {
    const node = spawnLogged(CHAT_BIN, [`127.0.0.1:${port}`, '--redis', `redis://127.0.0.1:${redisPort}/`]);
    await waitPort(port, node, `the chat node on ${port}`);
    log(`chat node up (pid ${node.pid}) on http://127.0.0.1:${port}/ with --redis`);
  }
  return nodePorts.map((p) => `http://127.0.0.1:${p}/`);
}

// The names in a page's user list.
const listedUsers = (page) => page.evaluate(() => [...document.querySelectorAll('#users button')].map((b) => b.dataset.name));

async function waitUsers(page, want, timeout = 10_000) {
  const sorted = [...want].sort();
  try {
    await page.waitForFunction(
      (w) => JSON.stringify([...document.querySelectorAll('#users button')].map((b) => b.dataset.name).sort()) === w,
      JSON.stringify(sorted),
      { timeout },
    );
  } catch (e) {
    throw new Error(`${page.label}: user list ${JSON.stringify(await listedUsers(page))}, expected ${JSON.stringify(sorted)}`);
  }
}

// ---- the page on another origin ------------------------------------------------------------
const FOREIGN_PAGE = fs.readFileSync(new globalThis.URL('./foreign_origin.html', import.meta.url));
let foreignServer = null;

// Serves the page on a free port of 127.0.0.1: another origin than the chat's (another port).
async function startForeign() {
  foreignServer = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(FOREIGN_PAGE);
  });
  await new Promise((resolve, reject) => {
    foreignServer.once('error', reject);
    foreignServer.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${foreignServer.address().port}`;
  log(`page of another origin on ${origin}/`);
  return origin;
}

// Waits for the foreign page's verdict: { opened, errored, code }.
async function foreignResult(page, timeout = 10_000) {
  try {
    const handle = await page.waitForFunction(() => window.__result, null, { timeout });
    return await handle.jsonValue();
  } catch (e) {
    const text = await page.evaluate(() => document.getElementById('out')?.textContent).catch(() => '');
    throw new Error(`${page.label}: no verdict within ${timeout} ms; page says: ${JSON.stringify(text)}`);
  }
}

// Waits until the chat server's log has a line containing `text`.
async function waitServerLog(text, timeout = 5_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const lines = fs.readFileSync(serverLog, 'utf8').split('\n');
    const hit = lines.find((l) => l.includes(text));
    if (hit) return hit;
    if (Date.now() > deadline) {
      throw new Error(`the chat's log has no line with ${JSON.stringify(text)}; last lines: ${JSON.stringify(lines.slice(-5))}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const joinedLines = (page) =>
  page.evaluate(() => [...document.querySelectorAll('#log li')].filter((li) => / joined$/.test(li.textContent)).length);

process.on('exit', () => {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
});

// ---- page helpers ---------------------------------------------------------------------------
async function step(name, fn) {
  const start = Date.now();
  try {
    const result = await fn();
    log(`ok   ${name} (${Date.now() - start} ms)`);
    return result;
  } catch (e) {
    log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
    throw e;
  }
}

// The state shown now (no waiting: used in error messages).
const stateOf = (page) =>
  page.evaluate(() => document.getElementById('state')?.textContent ?? '(no #state element)').catch((e) => `(${e.message})`);

async function waitState(page, state, timeout = 10_000) {
  try {
    await page.waitForFunction((s) => document.getElementById('state')?.textContent === s, state, { timeout });
  } catch (e) {
    throw new Error(`${page.label}: state is ${await stateOf(page)}, expected ${state} within ${timeout} ms`);
  }
}

async function waitLine(page, text, timeout = 10_000) {
  try {
    await page.waitForFunction(
      (t) => [...document.querySelectorAll('#log li')].some((li) => li.textContent === t),
      text,
      { timeout },
    );
  } catch (e) {
    const lines = await page.evaluate(() => [...document.querySelectorAll('#log li')].map((li) => li.textContent));
    throw new Error(`${page.label}: no line ${JSON.stringify(text)} within ${timeout} ms; log: ${JSON.stringify(lines)}`);
  }
}

async function nameOf(page) {
  await page.waitForFunction(() => (document.getElementById('me')?.textContent ?? '').startsWith('you are '), null, {
    timeout: 10_000,
  });
  return (await page.locator('#me').textContent()).replace('you are ', '');
}

async function say(page, text) {
  await page.locator('#text').fill(text);
  await page.locator('#text').press('Enter');
}

// ---- the test ---------------------------------------------------------------------------------
let context = null;
let pages = []; // the chat's tabs
let allPages = []; // and the page on another origin
let failed = false;
try {
  fs.writeFileSync(pidFile, '');
  await step('start the chat server', () => startServer());
  const FOREIGN = await step('serve a page on another origin', startForeign);
  const FOREIGN_URL = `${FOREIGN}/?ws=${encodeURIComponent(`ws://127.0.0.1:${PORT}/chat`)}`;

  const profile = fs.mkdtempSync(path.join(WORK_DIR, 'profile-'));
  context = await step('launch Chromium', () =>
    chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      viewport: { width: 820, height: 560 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    }),
  );
  context.setDefaultTimeout(10_000);
  const a = context.pages()[0] || (await context.newPage());
  const b = await context.newPage();
  const c = await context.newPage();
  a.label = 'page A';
  b.label = 'page B';
  c.label = 'page C (another origin)';
  pages = [a, b];
  allPages = [a, b, c];
  for (const p of allPages) {
    p.consoleLines = [];
    p.on('pageerror', (e) => {
      failed = true;
      log(`${p.label}: uncaught page error: ${e.message}`);
    });
    p.on('console', (m) => {
      p.consoleLines.push(m.text());
      if (m.type() === 'error') log(`${p.label} console: ${m.text()}`);
    });
  }

  const nameA = await step('page A loads and reaches OPEN', async () => {
    await a.goto(URL, { waitUntil: 'load', timeout: 10_000 });
    await waitState(a, 'OPEN');
    return nameOf(a);
  });
  await step(`page A is welcomed as ${nameA}, alone`, () => waitLine(a, `you joined as ${nameA}; nobody else is here yet`));

  const nameB = await step('page B loads and reaches OPEN', async () => {
    await b.goto(URL, { waitUntil: 'load', timeout: 10_000 });
    await waitState(b, 'OPEN');
    return nameOf(b);
  });
  if (nameA === nameB) throw new Error(`both pages are named ${nameA}`);
  await step(`page A shows "${nameB} joined"`, () => waitLine(a, `${nameB} joined`));
  await step(`page B's welcome lists ${nameA}`, () => waitLine(b, `you joined as ${nameB}; here: ${nameA}`));

  // A message with markup in it: it must arrive as text, not as elements.
  const payload = `hello from ${nameA} <img src=x onerror="window.__pwned=1"> & <b>not bold</b>`;
  await step('a message typed in page A appears in page B', async () => {
    await say(a, payload);
    await waitLine(b, `${nameA}: ${payload}`);
    await waitLine(a, `${nameA}: ${payload}`);
  });
  await step('user text is not parsed as HTML', async () => {
    for (const p of pages) {
      const imgs = await p.locator('#log img').count();
      const pwned = await p.evaluate(() => window.__pwned);
      if (imgs !== 0 || pwned !== undefined) throw new Error(`${p.label}: markup from a message was rendered`);
    }
  });
  await step('a reply from page B appears in page A', async () => {
    await say(b, `hi ${nameA}, ${nameB} here`);
    await waitLine(a, `${nameB}: hi ${nameA}, ${nameB} here`);
  });

  // RFC 6455 §10.2: a page of another origin must not get a socket to the chat.
  await step(`a page on ${FOREIGN} is refused: 403, the socket never opens`, async () => {
    const joinedBefore = await joinedLines(a);
    await c.goto(FOREIGN_URL, { waitUntil: 'load', timeout: 10_000 });
    const result = await foreignResult(c);
    log(`${c.label}: ${JSON.stringify(result)}`);
    if (result.opened || result.code !== 1006) {
      throw new Error(`the socket from ${FOREIGN} was not refused: ${JSON.stringify(result)}`);
    }
    const line = await waitServerLog(`refused an upgrade from Origin ${FOREIGN}: 403`);
    log(`chat log: ${line}`);
    const console403 = c.consoleLines.find((l) => l.includes('403'));
    if (!console403) throw new Error(`no 403 in ${c.label}'s console: ${JSON.stringify(c.consoleLines)}`);
    log(`${c.label} console: ${console403}`);
    await c.screenshot({ path: path.join(OUT_DIR, 'chat-foreign-refused.png') });
    await new Promise((r) => setTimeout(r, 300));
    const joinedAfter = await joinedLines(a);
    if (joinedAfter !== joinedBefore) throw new Error(`page A saw ${joinedAfter - joinedBefore} join(s) from the refused page`);
  });

  const nameB2 = await step('page B leaves (CLOSED, A sees it) and joins again (OPEN)', async () => {
    await b.locator('#toggle').click();
    await waitState(b, 'CLOSED');
    await waitLine(a, `${nameB} left`);
    await b.locator('#toggle').click();
    await waitState(b, 'OPEN');
    const n = await nameOf(b);
    await waitLine(a, `${n} joined`);
    return n;
  });
  log(`page B rejoined as ${nameB2}`);

  await step('server stops: both pages show CLOSED', async () => {
    await stopServer();
    await Promise.all(pages.map((p) => waitState(p, 'CLOSED', 10_000)));
    await Promise.all(pages.map((p) => waitLine(p, 'disconnected (code 1006)', 5_000)));
    await a.screenshot({ path: path.join(OUT_DIR, 'chat-closed.png') });
  });
  // Let the pages fail a reconnect or two (backoff) before the server comes back.
  await new Promise((r) => setTimeout(r, 1_500));
  await step(`server restarts allowing ${FOREIGN}: both pages reconnect on their own (OPEN)`, async () => {
    await startServer([FOREIGN]);
    await Promise.all(pages.map((p) => waitState(p, 'OPEN', 30_000)));
  });
  const [nameA3, nameB3] = await Promise.all([nameOf(a), nameOf(b)]);
  await step(`chat works after the restart (${nameA3} -> ${nameB3})`, async () => {
    await say(a, 'back again');
    await waitLine(b, `${nameA3}: back again`);
    await say(b, 'welcome back');
    await waitLine(a, `${nameB3}: welcome back`);
  });

  // The refusal above was the Origin check: allowed by name, the same page opens.
  await step(`the page on ${FOREIGN}, now allowed, opens and joins`, async () => {
    c.consoleLines = [];
    await c.goto(FOREIGN_URL, { waitUntil: 'load', timeout: 10_000 });
    const result = await foreignResult(c);
    log(`${c.label}: ${JSON.stringify(result)}`);
    if (!result.opened) throw new Error(`the allowed origin ${FOREIGN} was refused: ${JSON.stringify(result)}`);
    await c.waitForFunction(() => document.getElementById('out').textContent.includes('"type":"welcome"'), null, {
      timeout: 10_000,
    });
    await c.screenshot({ path: path.join(OUT_DIR, 'chat-foreign-allowed.png') });
    await c.close();
  });

  // Over TLS: the chat started with --tls serves its page on https and the page connects
  // with wss:// (an https page may not open ws://). The certificate is the script's own;
  // this browser context ignores certificate errors.
  if (TLS_CERT) {
    await step('start the chat with --tls', () => startTlsServer());
    tlsBrowser = await step('launch a second Chromium that ignores certificate errors', () =>
      chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000, args: ['--no-sandbox', '--disable-gpu', '--disable-quic'] }),
    );
    const tlsContext = await tlsBrowser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 820, height: 560 } });
    const d = await tlsContext.newPage();
    const e = await tlsContext.newPage();
    d.label = 'page D (https)';
    e.label = 'page E (https)';
    allPages.push(d, e);
    const names = [];
    for (const p of [d, e]) {
      p.on('pageerror', (err) => {
        failed = true;
        log(`${p.label}: uncaught page error: ${err.message}`);
      });
      names.push(
        await step(`${p.label} loads ${TLS_URL} and reaches OPEN over wss://`, async () => {
          await p.goto(TLS_URL, { waitUntil: 'load', timeout: 10_000 });
          const protocol = await p.evaluate(() => location.protocol);
          if (protocol !== 'https:') throw new Error(`the page was served over ${protocol}`);
          await waitState(p, 'OPEN');
          return nameOf(p);
        }),
      );
    }
    await step(`a message from ${names[0]} reaches ${names[1]} over wss://`, async () => {
      await say(d, 'hello over TLS');
      await waitLine(e, `${names[0]}: hello over TLS`);
    });
    await d.screenshot({ path: path.join(OUT_DIR, 'chat-tls.png') });
  }

  // Many nodes, one chat: two nodes over one Redis; pages F and H on node 1, G on node 2.
  // F picks G in its user list and sends privately: G shows it as private, H never gets it.
  if (REDIS_SERVER && CLUSTER_PORTS.length === 3) {
    const [url1, url2] = await step('start redis-server and two chat nodes with --redis', startCluster);
    clusterBrowser = await step('launch a Chromium for the cluster pages', () =>
      chromium.launch({ executablePath: CHROMIUM, headless: true, timeout: 30_000, args: ['--no-sandbox', '--disable-gpu', '--disable-quic'] }),
    );
    const clusterContext = await clusterBrowser.newContext({ viewport: { width: 820, height: 560 } });
    const f = await clusterContext.newPage();
    const g = await clusterContext.newPage();
    const h = await clusterContext.newPage();
    f.label = 'page F (node 1)';
    g.label = 'page G (node 2)';
    h.label = 'page H (node 1)';
    allPages.push(f, g, h);
    const names = {};
    for (const [p, url] of [[f, url1], [g, url2], [h, url1]]) {
      p.on('pageerror', (err) => {
        failed = true;
        log(`${p.label}: uncaught page error: ${err.message}`);
      });
      names[p.label] = await step(`${p.label} loads ${url}, reaches OPEN and Redis`, async () => {
        await p.goto(url, { waitUntil: 'load', timeout: 10_000 });
        await waitState(p, 'OPEN');
        await p.waitForFunction(() => document.getElementById('cluster')?.textContent === 'Redis: connected', null, { timeout: 10_000 });
        return nameOf(p);
      });
    }
    const [nf, ng, nh] = [names[f.label], names[g.label], names[h.label]];
    if (new Set([nf, ng, nh]).size !== 3) throw new Error(`names are not unique across the nodes: ${nf} ${ng} ${nh}`);
    await step(`the user lists agree across the nodes (${nf}, ${ng}, ${nh})`, async () => {
      await waitUsers(f, [ng, nh]);
      await waitUsers(g, [nf, nh]);
      await waitUsers(h, [nf, ng]);
    });
    await step(`a message to everyone from ${nf} (node 1) reaches ${ng} (node 2) and ${nh}`, async () => {
      await say(f, 'hello both nodes');
      await waitLine(g, `${nf}: hello both nodes`);
      await waitLine(h, `${nf}: hello both nodes`);
    });
    const privateLine = `${nf} \u2192 ${ng} (private): just between us`;
    await step(`${nf} clicks ${ng} in the user list and sends privately: ${ng} shows it as private`, async () => {
      await f.locator(`#users button[data-name="${ng}"]`).click();
      const to = await f.locator('#to').textContent();
      if (to !== `to ${ng} (private)`) throw new Error(`page F's recipient line reads ${JSON.stringify(to)}`);
      await say(f, 'just between us');
      await waitLine(g, privateLine);
      await waitLine(f, privateLine);
      const cls = await g.evaluate((t) => [...document.querySelectorAll('#log li')].find((li) => li.textContent === t)?.className, privateLine);
      if (!/\bprivate\b/.test(cls || '')) throw new Error(`page G's line is not marked private (class ${JSON.stringify(cls)})`);
    });
    await step(`${nh} (the third page) never sees it`, async () => {
      // A later message to everyone reaches H: the private one would have come before it.
      await say(g, 'fence');
      await waitLine(h, `${ng}: fence`);
      const seen = await h.evaluate(() => [...document.querySelectorAll('#log li')].map((li) => li.textContent));
      if (seen.some((l) => l.includes('just between us'))) throw new Error(`page H shows the private message: ${JSON.stringify(seen)}`);
    });
    await step(`${ng} answers privately from node 2 (picked in its list); ${nh} does not see it`, async () => {
      await g.locator(`#users button[data-name="${nf}"]`).click();
      await say(g, 'got it');
      await waitLine(f, `${ng} \u2192 ${nf} (private): got it`);
      // The pick stays for the next message; "everyone" clears it.
      await f.locator('#everyone').click();
      if ((await f.locator('#to').textContent()) !== 'to everyone') throw new Error('page F still has recipients picked');
      await say(f, 'fence 2');
      await waitLine(h, `${nf}: fence 2`);
      const seen = await h.evaluate(() => [...document.querySelectorAll('#log li')].map((li) => li.textContent));
      if (seen.some((l) => l.includes('got it'))) throw new Error(`page H shows the private answer: ${JSON.stringify(seen)}`);
    });
    await f.screenshot({ path: path.join(OUT_DIR, 'chat-cluster-f.png') });
    await g.screenshot({ path: path.join(OUT_DIR, 'chat-cluster-g.png') });
    await h.screenshot({ path: path.join(OUT_DIR, 'chat-cluster-h.png') });
  } else {
    log('!!! CLUSTER PHASE NOT RUN: REDIS_SERVER and CHAT_CLUSTER_PORTS (3 ports) are not set !!!');
  }

  if (failed) throw new Error('a page threw an uncaught error');
  await a.screenshot({ path: path.join(OUT_DIR, 'chat.png') });
  await b.screenshot({ path: path.join(OUT_DIR, 'chat-b.png') });
  const shots = ['chat.png', 'chat-b.png', 'chat-closed.png', 'chat-foreign-refused.png', 'chat-foreign-allowed.png'];
  if (TLS_CERT) shots.push('chat-tls.png');
  if (clusterBrowser) shots.push('chat-cluster-f.png', 'chat-cluster-g.png', 'chat-cluster-h.png');
  log(`screenshots: ${shots.map((f) => path.join(OUT_DIR, f)).join(', ')}`);
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
  for (const [i, p] of allPages.entries()) {
    try {
      const file = path.join(OUT_DIR, `chat-failure-${'abcdefgh'[i]}.png`);
      await p.screenshot({ path: file, timeout: 5_000 });
      console.error(`${p.label}: state ${await stateOf(p)}; screenshot ${file}`);
      const lines = await p.evaluate(() => [...document.querySelectorAll('#log li')].map((li) => li.textContent));
      console.error(`${p.label} log:\n  ` + lines.join('\n  '));
    } catch (_) {
      // The page is gone: nothing more to show.
    }
  }
} finally {
  if (context) await context.close().catch(() => {});
  if (tlsBrowser) await tlsBrowser.close().catch(() => {});
  if (clusterBrowser) await clusterBrowser.close().catch(() => {});
  for (const child of clusterProcs) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (tlsServer && tlsServer.exitCode === null) tlsServer.kill('SIGKILL');
  await stopServer().catch(() => {});
  if (foreignServer) await new Promise((r) => foreignServer.close(r));
}

if (failed) {
  log('chat browser test: FAILED');
  process.exit(1);
}
log('chat browser test: PASSED');
