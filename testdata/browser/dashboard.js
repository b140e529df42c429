// Opens the notifier demo's dashboard in Debian's Chromium (never a downloaded browser)
// and checks it the way a person would: it goes live over Socket.IO, each panel fills
// from real database writes, the check-in queue lists each appointment once, the
// token leaves the address bar and is stored nowhere, nothing outside the notifier is
// requested, a dropped connection is recovered, and a bad token shows an auth error.
//
// Usage: node dashboard.js '<options JSON>'
//   url         the dashboard URL with ?token= (as `notifier demo` prints it)
//   chromium    path of the Chromium binary
//   screenshot  where to save the live dashboard's screenshot (PNG)
//   authShot    where to save the bad-token screenshot (PNG); optional
//   min         {appointments, queue, doctors}: rows each panel must reach
//   timeoutMs   budget of each wait
//
// Prints one JSON line with what it saw; exits non-zero with the reason on stderr.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const opts = JSON.parse(process.argv[2] || '{}');
const timeout = opts.timeoutMs || 60000;
const min = Object.assign({ appointments: 5, queue: 3, doctors: 2 }, opts.min || {});

class Failure extends Error {}

function fail(msg) {
  throw new Failure(msg);
}

async function state(page) {
  return page.$eval('#conn', (el) => el.dataset.state + ' (' + el.textContent.trim() + ')');
}

async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    fail(`${what} within ${timeout} ms; connection state ${await state(page)}`);
  }
}

// Reads of the live page query and read in one step: a $$eval takes element handles
// first, and the page may replace those elements before it reads them.
async function rows(page, list) {
  return page.evaluate((l) => Array.from(document.querySelectorAll(`#${l} > li`), (e) => e.dataset.id), list);
}

async function main() {
  const base = new URL(opts.url);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'notifier-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: opts.chromium,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    locale: 'en-US',
  });
  const seen = { errors: [], external: [], sockets: [], phase: 'load' };
  const watch = (page, label) => {
    const error = (text) => seen.errors.push({ page: label, text: `[${label}, ${seen.phase}] ${text}` });
    page.on('console', (m) => { if (m.type() === 'error') error(m.text()); });
    page.on('pageerror', (e) => error(String(e)));
    page.on('response', (r) => {
      if (r.status() >= 400) error(`HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol !== 'data:' && u.host !== base.host) seen.external.push(r.url());
    });
    page.on('websocket', (ws) => seen.sockets.push(new URL(ws.url()).pathname));
  };
  try {
    const result = {};
    const page = context.pages()[0] || (await context.newPage());
    watch(page, 'dashboard');
    // Socket.IO's WebSockets go through a pass-through route, so the test can drop
    // one as a network failure would.
    const live = [];
    await page.routeWebSocket(/\/socket\.io\//, (ws) => {
      ws.connectToServer();
      live.push(ws);
    });

    const t0 = Date.now();
    await page.goto(opts.url, { waitUntil: 'domcontentloaded' });
    if (page.url().includes('token=')) fail(`the token is still in the address bar: ${page.url()}`);

    await waitFor(page, 'the connection state did not become live', () => document.querySelector('#conn').dataset.state === 'live');
    result.liveAfterMs = Date.now() - t0;

    const panels = [['appointments', min.appointments], ['queue', min.queue], ['doctors', min.doctors]];
    for (const [list, n] of panels) {
      await waitFor(page, `the ${list} panel did not reach ${n} rows`,
        (a) => document.querySelectorAll(`#${a.list} > li`).length >= a.n, { list, n });
      result[list + 'FilledAfterMs'] = Date.now() - t0;
    }

    const queue = await rows(page, 'queue');
    if (new Set(queue).size !== queue.length) fail(`the check-in queue lists an appointment twice: ${queue.join(',')}`);
    const queueStatuses = await page.evaluate(() => Array.from(document.querySelectorAll('#queue > li .status'), (e) => e.textContent));
    if (queueStatuses.some((s) => s !== 'Check-in')) fail(`queue rows with another status: ${queueStatuses.join(',')}`);
    const colours = await page.evaluate(() => Array.from(document.querySelectorAll('#appointments > li .status'),
      (e) => getComputedStyle(e).getPropertyValue('--c').trim()));
    if (colours.some((c) => !/^#[0-9a-f]{3,8}$/i.test(c))) fail(`status chips without their colour: ${colours.join(',')}`);
    const doctorChips = await page.evaluate(() => Array.from(document.querySelectorAll('#doctors > li'),
      (e) => e.querySelectorAll('.chip:not(.chip-none)').length));
    if (doctorChips.some((n) => n === 0)) fail(`doctors without procedures: ${doctorChips.join(',')}`);

    const stored = await page.evaluate(() => ({
      local: localStorage.length, session: sessionStorage.length, cookie: document.cookie,
      url: location.href, dialogOpen: document.querySelector('#token-dialog').open,
    }));
    if (stored.local || stored.session || stored.cookie) fail(`something was stored: ${JSON.stringify(stored)}`);
    if (stored.dialogOpen) fail('the token dialog is open on a live dashboard');
    const events = Number((await page.textContent('#event-count')).replace(/\D/g, ''));
    const age = await page.textContent('#event-age');
    if (!(events > 0) || !/^last /.test(age)) fail(`event counter ${events}, age "${age}"`);
    if (!seen.sockets.some((p) => p.startsWith('/socket.io/'))) fail(`no Socket.IO WebSocket opened (sockets: ${seen.sockets.join(',')})`);
    if (seen.sockets.some((p) => !p.startsWith('/socket.io/'))) fail(`a WebSocket other than Socket.IO: ${seen.sockets.join(',')}`);

    Object.assign(result, {
      state: await state(page),
      events,
      age,
      appointments: (await rows(page, 'appointments')).length,
      queue: queue.length,
      doctors: doctorChips.length,
      url: stored.url,
    });
    await page.waitForTimeout(600); // let the newest rows' arrival highlight fade
    await page.screenshot({ path: opts.screenshot });

    // A dropped WebSocket: the client reconnects and the server recovers the session.
    const before = events;
    seen.phase = 'drop';
    const socket = live[live.length - 1];
    if (!socket) fail('no Socket.IO WebSocket to drop');
    await socket.close({ code: 4000, reason: 'test drop' });
    await waitFor(page, 'the connection was not recovered after a drop',
      () => document.querySelector('#conn').dataset.state === 'recovered');
    await waitFor(page, 'no event arrived after the recovery',
      (n) => Number(document.querySelector('#event-count').textContent.replace(/\D/g, '')) > n, before);
    const requeue = await rows(page, 'queue');
    if (new Set(requeue).size !== requeue.length) fail(`after recovery the check-in queue lists an appointment twice: ${requeue.join(',')}`);
    if (await page.isVisible('#banner')) fail(`a banner after a recovered drop: ${await page.textContent('#banner-text')}`);
    result.recovered = true;

    // A bad token: auth error, and the dialog asks for another.
    seen.phase = 'bad token';
    const bad = await context.newPage();
    watch(bad, 'bad');
    await bad.goto(base.origin + '/?token=not-a-token', { waitUntil: 'domcontentloaded' });
    await waitFor(bad, 'a bad token did not show the auth error', () =>
      document.querySelector('#conn').dataset.state === 'auth' && document.querySelector('#token-dialog').open);
    result.authError = (await bad.textContent('#token-error')).trim();
    if (opts.authShot) await bad.screenshot({ path: opts.authShot });

    // A refused client closes its Engine.IO session while its next poll may already
    // be on the way; the server answers that poll 400 (unknown session), as Engine.IO
    // servers do. Any other error is a bug.
    const errors = seen.errors.filter((e) => !(e.page === 'bad' && /\b400\b/.test(e.text)));
    if (errors.length) fail(`console errors: ${errors.map((e) => e.text).join(' | ')}`);
    if (seen.external.length) fail(`requests outside the notifier: ${seen.external.join(', ')}`);
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write((e instanceof Failure ? e.message : e.stack || String(e)) + '\n');
  process.exit(1);
});
