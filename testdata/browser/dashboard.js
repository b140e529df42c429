// Opens the notifier demo's dashboard in Debian's Chromium (never a downloaded browser)
// and checks it the way a person would: it shows the rows committed before it opened
// as soon as its snapshots load (before any event), then the rows changed between its
// snapshots and its live connection once each, in their latest state; it goes live
// over Socket.IO, each panel fills from real database writes, the check-in queue lists each appointment once, the
// token leaves the address bar and is stored nowhere, nothing outside the notifier is
// requested; the page follows the clinic's changes (a patient checked in, served,
// finished, sent back, rescheduled, deleted; a doctor hired, updated, busy, deleted; a
// status recoloured); a dropped connection is recovered with those changes kept, and
// a bad token shows an auth error, and the header never reads live without a live
// connection. The page speaks the browser's language, English (en-US) or Portuguese
// (pt-BR, a second browser), with 24-hour times in both; it keeps the token for the
// tab (sessionStorage), so a reload reconnects without asking, and asks again after
// sign-out.
//
// Usage: node dashboard.js '<options JSON>'
//   url         the dashboard URL with ?token= (as `notifier demo` prints it)
//   chromium    path of the Chromium binary
//   screenshot  where to save the live dashboard's screenshot (PNG)
//   authShot    where to save the bad-token screenshot (PNG); optional
//   min         {appointments, queue, doctors}: rows each panel must reach
//   timeoutMs   budget of each wait
//
// The database writes are the caller's (demo_browser_test.go's clinicWrite): the
// script asks for each with a JSON line on stdout, {"ask":"book","days":7,...}, and
// reads the answer, {"id":N} or {"error":"..."}, from stdin once it is committed; it
// then waits for the page to show the change. Its last stdout line is
// {"done":{...what it saw}}; it exits non-zero with the reason on stderr.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
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

// ask has the caller make one database write, and resolves to the row's id once it is
// committed.
const answers = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const next = answers.shift();
  if (next) next(JSON.parse(line));
});
function ask(what, args) {
  return new Promise((resolve, reject) => {
    answers.push((a) => (a.error ? reject(new Failure(`the write "${what}" failed: ${a.error}`)) : resolve(a.id)));
    process.stdout.write(JSON.stringify(Object.assign({ ask: what }, args)) + '\n');
  });
}

// Reads of the live page query and read in one step: a $$eval takes element handles
// first, and the page may replace those elements before it reads them.
async function rows(page, list) {
  return page.evaluate((l) => Array.from(document.querySelectorAll(`#${l} > li`), (e) => e.dataset.id), list);
}

// pageView runs in the page: how often each list shows row id and what its row says;
// with want ({list: {field: value}}, detail matching a substring), whether the view
// has those values. Read in one step, as rows does.
function pageView({ id, want }) {
  const one = (list) => {
    const rows = Array.from(document.querySelectorAll(`#${list} > li`)).filter((e) => e.dataset.id === String(id));
    const r = rows[0];
    const text = (sel) => (r && r.querySelector(sel) ? r.querySelector(sel).textContent : null);
    return {
      n: rows.length,
      status: r && r.querySelector('.status') ? r.querySelector('.status').dataset.name || null : null, // the clinic's name
      start: text('.time-start'),
      detail: r ? Array.from(r.querySelectorAll('.detail'), (d) => d.textContent).join(' | ') : null,
      busy: r ? r.dataset.busy || null : null,
      busyLabel: text('.busy'),
      chips: r ? r.querySelectorAll('.chip:not(.chip-none)').length : 0,
    };
  };
  const v = { appointments: one('appointments'), queue: one('queue'), doctors: one('doctors') };
  if (!want) return v;
  return Object.keys(want).every((list) => Object.keys(want[list]).every((k) =>
    (k === 'detail' ? (v[list].detail || '').includes(want[list][k]) : v[list][k] === want[list][k])));
}

function view(page, id) {
  return page.evaluate(pageView, { id, want: null });
}

// until waits for the page to show row id as want says.
async function until(page, what, id, want) {
  try {
    await page.waitForFunction(pageView, { id, want }, { timeout, polling: 100 });
  } catch (e) {
    fail(`${what} (#${id}) within ${timeout} ms: the page shows ${JSON.stringify(await view(page, id))}, want ${JSON.stringify(want)}; connection state ${await state(page)}`);
  }
}

// Expectations. Today's list shows today's appointments; the queue, those in
// Check-in whatever their day. The test's appointments are days ahead (the queue's
// flows) or today's in statuses the simulator never moves (today's list's flows).
const listed = (status) => ({ appointments: { n: 1, status }, queue: { n: 0 } });
const queued = { appointments: { n: 0 }, queue: { n: 1, status: 'Check-in' } };
const away = { appointments: { n: 0 }, queue: { n: 0 } };

// changes writes as the clinic app does and waits for the page to follow each write.
// It returns the rows written and the state each must keep.
async function changes(page) {
  const book = (start, end) => ask('book', { days: 7, start, end });
  const today = (start, end, status) => ask('book', { days: 0, start, end, status });
  const status = (id, s) => ask('status', { id, status: s });
  const checkIn = async (id, what) => {
    await status(id, 'Check-in');
    await until(page, `${what}, checked in, did not join the queue once`, id, queued);
  };
  const keep = [];

  // A patient's way through the queue: checked in, served, finished.
  const a = await book('07:05', '07:20');
  await checkIn(a, 'a booking');
  await status(a, 'Em atendimento');
  await until(page, 'a patient served did not leave the queue', a, away);
  await status(a, 'Finalizado');
  keep.push({ id: a, want: away });

  // Finished straight from the queue; sent back to Agendado.
  const b = await book('07:20', '07:35');
  await checkIn(b, 'a second booking');
  await status(b, 'Finalizado');
  await until(page, 'a patient finished from the queue did not leave it', b, away);
  keep.push({ id: b, want: away });
  const c = await book('07:35', '07:50');
  await checkIn(c, 'a third booking');
  await status(c, 'Agendado');
  await until(page, 'a patient sent back to Agendado did not leave the queue', c, away);
  keep.push({ id: c, want: away });

  // Rescheduled while waiting: it moves in the queue; then soft-deleted: gone.
  const e = await book('07:50', '08:05');
  await checkIn(e, 'a fourth booking');
  await ask('reschedule', { id: e, days: 8, start: '16:30', end: '16:45' });
  await until(page, 'a rescheduled appointment did not move to 16:30 in the queue', e,
    { appointments: { n: 0 }, queue: { n: 1, status: 'Check-in', detail: '16:30' } });
  await ask('cancel', { id: e });
  await until(page, 'a soft-deleted appointment did not leave the queue', e, away);
  keep.push({ id: e, want: away });

  // Today's list: a booking joins it; a new status shows; moved to another day it
  // leaves, moved back it returns at its new time; soft-deleted it leaves. Another one
  // deleted for good.
  const t1 = await today('20:05', '20:20', 'Finalizado');
  await until(page, 'a booking for today did not appear once', t1, listed('Finalizado'));
  await status(t1, 'Cancelado');
  await until(page, 'a new status did not show in today\'s list', t1, listed('Cancelado'));
  await ask('reschedule', { id: t1, days: 7, start: '20:05', end: '20:20' });
  await until(page, 'an appointment moved to another day did not leave today\'s list', t1, away);
  await ask('reschedule', { id: t1, days: 0, start: '20:35', end: '20:50' });
  await until(page, 'an appointment moved back to today did not return at 20:35', t1,
    { appointments: { n: 1, start: '20:35', status: 'Cancelado' }, queue: { n: 0 } });
  await ask('cancel', { id: t1 });
  await until(page, 'a soft-deleted appointment did not leave today\'s list', t1, away);
  keep.push({ id: t1, want: away });
  const d = await today('20:50', '21:05', 'Finalizado');
  await until(page, 'a second booking for today did not appear', d, listed('Finalizado'));
  await ask('delete', { id: d });
  await until(page, 'a deleted appointment did not leave the list', d, away);
  keep.push({ id: d, want: away });

  // A status recoloured: the next event in that status repaints every chip in it,
  // those of rows that had no event since included.
  const f = await book('08:20', '08:35');
  await checkIn(f, 'a sixth booking');
  const colour = '#123abc';
  await ask('color', { status: 'Check-in', color: colour });
  const g = await book('08:35', '08:50');
  await checkIn(g, 'a seventh booking');
  const chips = (c) => {
    const all = Array.from(document.querySelectorAll('.board .status')).filter((e) => e.dataset.name === 'Check-in');
    const colours = all.map((e) => getComputedStyle(e).getPropertyValue('--c').trim());
    return c === null ? colours : colours.length >= 4 && colours.every((x) => x === c);
  };
  try {
    await page.waitForFunction(chips, colour, { timeout, polling: 100 });
  } catch (err) {
    fail(`Check-in chips were not all repainted ${colour} within ${timeout} ms: ${(await page.evaluate(chips, null)).join(',')}`);
  }
  keep.push({ id: f, want: queued }, { id: g, want: queued });

  // A doctor: hired, updated, busy, free again, deleted.
  const x = await ask('hire', { name: 'Dra. Teste Navegador' });
  await until(page, 'a doctor hired did not appear with two procedures', x, { doctors: { n: 1, chips: 2, busy: 'false' } });
  await ask('phone', { id: x, phone: '(81) 91234-5678' });
  await until(page, 'a doctor\'s new phone did not show', x, { doctors: { n: 1, detail: '(81) 91234-5678' } });
  await ask('busy', { id: x, busy: true });
  await until(page, 'a busy doctor was not shown busy', x, { doctors: { n: 1, busy: 'true', busyLabel: 'Busy' } });
  await ask('busy', { id: x, busy: false });
  await until(page, 'a doctor free again was still shown busy', x, { doctors: { n: 1, busy: 'false', busyLabel: null } });
  await ask('fire', { id: x });
  await until(page, 'a deleted doctor did not leave the list', x, { doctors: { n: 0 } });
  keep.push({ id: x, want: { doctors: { n: 0 } } });
  return keep;
}

// WORDS is what the test expects the page to say in each language.
const WORDS = {
  en: { title: "Today's appointments", queue: 'Check-in queue', live: 'Live', signOut: 'Sign out',
    header: /^live since (\d{2}:\d{2})$/, notLive: /live/i, auth: 'auth error, not connected',
    finished: 'Finished', exp: 'token valid until ' },
  'pt-BR': { title: 'Consultas de hoje', queue: 'Fila de check-in', live: 'Ao vivo', signOut: 'Sair',
    header: /^ao vivo desde (\d{2}:\d{2})$/, notLive: /ao vivo/i, auth: 'erro de autenticação, não conectado',
    finished: 'Finalizado', exp: 'token válido até ' },
};

const hhmm = (d) => String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');

// language checks a live page in lang: <html lang>, its labels, the header's live line
// and the token's expiry in 24-hour time (exp: the token's, in this machine's zone, as
// the browser's), no AM/PM anywhere, and a seed status in that language.
async function language(page, lang, exp) {
  const w = WORDS[lang];
  const v = await page.evaluate(() => ({
    lang: document.documentElement.lang,
    title: document.querySelector('#appointments-title').textContent,
    queue: document.querySelector('#queue-title').textContent,
    conn: document.querySelector('#conn-label').textContent.trim(),
    header: document.querySelector('#live-since').textContent,
    headerState: document.querySelector('#live-since').dataset.state,
    signOut: document.querySelector('#sign-out').hidden ? null : document.querySelector('#sign-out').textContent,
    exp: document.querySelector('#account-exp').textContent,
    text: document.body.innerText,
    finished: Array.from(document.querySelectorAll('.status'), (e) => [e.dataset.name, e.textContent])
      .filter(([n]) => n === 'Finalizado').map(([, t]) => t),
  }));
  const bad = [];
  if (v.lang !== lang) bad.push(`<html lang="${v.lang}">`);
  if (v.title !== w.title || v.queue !== w.queue) bad.push(`panel titles "${v.title}", "${v.queue}"`);
  if (v.conn !== w.live) bad.push(`connection label "${v.conn}"`);
  if (v.headerState !== 'live' || !w.header.test(v.header)) bad.push(`header "${v.header}" (${v.headerState})`);
  if (v.signOut !== w.signOut) bad.push(`sign-out control "${v.signOut}"`);
  if (v.exp !== w.exp + hhmm(exp)) bad.push(`expiry "${v.exp}", want "${w.exp}${hhmm(exp)}"`);
  if (/\b\d{1,2}:\d{2}\s*(AM|PM|a\.\s?m\.|p\.\s?m\.)/i.test(v.text)) bad.push('a 12-hour time');
  if (!v.finished.length || v.finished.some((t) => t !== w.finished)) bad.push(`Finalizado shown as ${JSON.stringify(v.finished)}`);
  if (bad.length) fail(`the ${lang} page: ${bad.join('; ')}`);
}

// notLive checks that a page refused its token says so in its header, in lang, with
// no word of live; and that it forgot the token.
async function notLive(page, lang) {
  const w = WORDS[lang];
  const v = await page.evaluate(() => ({
    state: document.querySelector('#live-since').dataset.state,
    text: document.querySelector('#live-since').textContent,
    subtitle: document.querySelector('.subtitle').textContent,
    lang: document.documentElement.lang,
    stored: Object.keys(sessionStorage).join(','),
  }));
  if (v.state !== 'auth' || v.text !== w.auth || w.notLive.test(v.subtitle) || v.lang !== lang) {
    fail(`a refused token's header reads "${v.subtitle}" (state ${v.state}, lang ${v.lang}), want "${w.auth}"`);
  }
  if (v.stored) fail(`a refused token is still stored: ${v.stored}`);
  return v.subtitle;
}

// reloads checks that a live page reconnects after a reload without asking for the
// token, and that after sign-out a reload asks for it.
async function reloads(page) {
  await page.reload({ waitUntil: 'domcontentloaded' });
  await waitFor(page, 'a reload did not reconnect with the tab\'s token', () =>
    document.querySelector('#conn').dataset.state === 'live' && !document.querySelector('#token-dialog').open &&
    document.querySelectorAll('#appointments > li').length > 0);
  if (page.url().includes('token=')) fail(`the token is in the address bar after a reload: ${page.url()}`);
  await page.click('#sign-out');
  await waitFor(page, 'sign-out did not forget the token and ask for one', () =>
    document.querySelector('#token-dialog').open && sessionStorage.length === 0 &&
    document.querySelector('#conn').dataset.state === 'idle' && document.querySelector('#live-since').dataset.state === 'offline' &&
    document.querySelectorAll('#appointments > li').length === 0);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await waitFor(page, 'a reload after sign-out did not ask for the token', () =>
    document.querySelector('#token-dialog').open && document.querySelector('#conn').dataset.state === 'idle' &&
    sessionStorage.length === 0);
}

// beforeOpen writes rows before the page opens: today's appointments (in statuses the
// simulator leaves alone), two in the check-in queue (days ahead) and a doctor.
async function beforeOpen() {
  const rows = {
    p1: await ask('book', { days: 0, start: '21:00', end: '21:15', status: 'Finalizado' }),
    p2: await ask('book', { days: 0, start: '21:15', end: '21:30', status: 'Cancelado' }),
    p3: await ask('book', { days: 0, start: '21:30', end: '21:45', status: 'Finalizado' }),
    q1: await ask('book', { days: 7, start: '06:00', end: '06:15', status: 'Check-in' }),
    q2: await ask('book', { days: 7, start: '06:15', end: '06:30', status: 'Check-in' }),
    doctor: await ask('hire', { name: 'Dra. Antes da Página' }),
  };
  return rows;
}

// loaded checks that the page shows the rows written before it opened as soon as
// its snapshots are in, while its Socket.IO connection is held back: no event yet.
// It then changes rows between the snapshots and the live connection, lets the
// connection through and checks that each is shown once, in its latest state.
async function loaded(page, rows, release) {
  await waitFor(page, 'the snapshots did not load', () =>
    ['appointments', 'queue', 'doctors'].every((l) => document.getElementById(l).dataset.since !== undefined));
  const at = await page.evaluate(() => ({
    events: document.querySelector('#event-count').textContent,
    conn: document.querySelector('#conn').dataset.state,
    since: ['appointments', 'queue', 'doctors'].map((l) => document.getElementById(l).dataset.since),
    counts: ['appointments', 'queue', 'doctors'].map((l) =>
      [document.getElementById(l).children.length, document.getElementById(l + '-count').textContent]),
  }));
  if (at.events !== '0') fail(`events arrived while the connection was held back: ${at.events}`);
  if (at.conn !== 'connecting') fail(`connection state ${at.conn} while held back, want connecting`);
  if (at.counts.some(([n, shown]) => String(n) !== shown)) fail(`panel counts differ from their rows: ${JSON.stringify(at.counts)}`);
  const pre = [
    [rows.p1, listed('Finalizado'), 'a booking of today made before the page opened'],
    [rows.p2, listed('Cancelado'), 'a cancelled booking of today made before the page opened'],
    [rows.p3, listed('Finalizado'), 'a third booking of today made before the page opened'],
    [rows.q1, queued, 'a check-in made before the page opened'],
    [rows.q2, queued, 'a second check-in made before the page opened'],
    [rows.doctor, { doctors: { n: 1, chips: 2, detail: '(81) 90000-0000' } }, 'a doctor hired before the page opened'],
  ];
  for (const [id, want, what] of pre) {
    if (!(await page.evaluate(pageView, { id, want }))) {
      fail(`${what} (#${id}) is not listed right after load: the page shows ${JSON.stringify(await view(page, id))}, want ${JSON.stringify(want)}`);
    }
  }
  const order = await page.evaluate((ids) => {
    const all = Array.from(document.querySelectorAll('#appointments > li'), (e) => e.dataset.id);
    return ids.map((id) => all.indexOf(String(id)));
  }, [rows.p1, rows.p2, rows.p3]);
  if (!(order[0] < order[1] && order[1] < order[2])) fail(`today's list is not in time order: positions ${order.join(',')}`);

  // Between the snapshots and the live connection.
  await ask('reschedule', { id: rows.p1, days: 0, start: '21:50', end: '22:05' });
  const p4 = await ask('book', { days: 0, start: '21:40', end: '21:55', status: 'Finalizado' });
  await ask('status', { id: rows.q2, status: 'Finalizado' });
  await ask('phone', { id: rows.doctor, phone: '(81) 95555-0000' });
  release();
  await waitFor(page, 'the connection state did not become live', () => document.querySelector('#conn').dataset.state === 'live');
  await until(page, 'a booking rescheduled between the snapshot and the connection did not show its new time once', rows.p1,
    { appointments: { n: 1, start: '21:50', status: 'Finalizado' }, queue: { n: 0 } });
  await until(page, 'a booking made between the snapshot and the connection did not appear once', p4, listed('Finalizado'));
  await until(page, 'a check-in finished between the snapshot and the connection did not leave the queue', rows.q2, away);
  await until(page, 'a doctor changed between the snapshot and the connection did not show the new phone once', rows.doctor,
    { doctors: { n: 1, detail: '(81) 95555-0000' } });
  const moved = await page.evaluate((ids) => {
    const all = Array.from(document.querySelectorAll('#appointments > li'), (e) => e.dataset.id);
    return ids.map((id) => all.indexOf(String(id)));
  }, [rows.p3, p4, rows.p1]);
  if (!(moved[0] < moved[1] && moved[1] < moved[2])) fail(`today's list is not in time order after live changes: positions ${moved.join(',')}`);
  return [
    { id: rows.p1, want: { appointments: { n: 1, start: '21:50' }, queue: { n: 0 } } },
    { id: rows.p2, want: listed('Cancelado') },
    { id: p4, want: listed('Finalizado') },
    { id: rows.q1, want: queued },
    { id: rows.q2, want: away },
  ];
}

async function main() {
  const base = new URL(opts.url);
  const tokenExp = new Date(JSON.parse(Buffer.from(base.searchParams.get('token').split('.')[1], 'base64url')).exp * 1000);
  const chromeArgs = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ];
  let ptBrowser = null;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'notifier-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: opts.chromium,
    headless: true,
    args: chromeArgs,
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

    // Rows committed before the page opens; the page's Socket.IO requests wait until
    // the snapshot checks let them through.
    const early = await beforeOpen();
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const hold = async (route) => {
      await held;
      await route.continue();
    };
    await page.route(/\/socket\.io\//, hold);

    const t0 = Date.now();
    await page.goto(opts.url, { waitUntil: 'domcontentloaded' });
    if (page.url().includes('token=')) fail(`the token is still in the address bar: ${page.url()}`);
    const loadedKeep = await loaded(page, early, release);
    await page.unroute(/\/socket\.io\//, hold);
    result.liveAfterMs = Date.now() - t0;

    const panels = [['appointments', min.appointments], ['queue', min.queue], ['doctors', min.doctors]];
    for (const [list, n] of panels) {
      await waitFor(page, `the ${list} panel did not reach ${n} rows`,
        (a) => document.querySelectorAll(`#${a.list} > li`).length >= a.n, { list, n });
      result[list + 'FilledAfterMs'] = Date.now() - t0;
    }

    const queue = await rows(page, 'queue');
    if (new Set(queue).size !== queue.length) fail(`the check-in queue lists an appointment twice: ${queue.join(',')}`);
    const queueStatuses = await page.evaluate(() => Array.from(document.querySelectorAll('#queue > li .status'), (e) => e.dataset.name));
    if (queueStatuses.some((s) => s !== 'Check-in')) fail(`queue rows with another status: ${queueStatuses.join(',')}`);
    const colours = await page.evaluate(() => Array.from(document.querySelectorAll('#appointments > li .status'),
      (e) => getComputedStyle(e).getPropertyValue('--c').trim()));
    if (colours.some((c) => !/^#[0-9a-f]{3,8}$/i.test(c))) fail(`status chips without their colour: ${colours.join(',')}`);
    const doctorChips = await page.evaluate(() => Array.from(document.querySelectorAll('#doctors > li'),
      (e) => e.querySelectorAll('.chip:not(.chip-none)').length));
    if (doctorChips.some((n) => n === 0)) fail(`doctors without procedures: ${doctorChips.join(',')}`);

    const stored = await page.evaluate(() => ({
      local: localStorage.length, session: Object.keys(sessionStorage).join(','), cookie: document.cookie,
      url: location.href, dialogOpen: document.querySelector('#token-dialog').open,
    }));
    if (stored.local || stored.session !== 'notifier.token' || stored.cookie) fail(`stored other than the tab's token: ${JSON.stringify(stored)}`);
    await language(page, 'en', tokenExp);
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

    // The clinic's changes, each followed by the page.
    seen.phase = 'changes';
    const changed = Date.now();
    const keep = loadedKeep.concat(await changes(page));
    result.changesFollowedMs = Date.now() - changed;

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
    // What the changes left is still what the page shows: nothing replayed brought an
    // older state back.
    for (const k of keep) {
      if (!(await page.evaluate(pageView, k))) fail(`after recovery #${k.id} shows ${JSON.stringify(await view(page, k.id))}, want ${JSON.stringify(k.want)}`);
    }
    result.recovered = true;

    // A bad token: auth error, and the dialog asks for another.
    seen.phase = 'bad token';
    const bad = await context.newPage();
    watch(bad, 'bad');
    await bad.goto(base.origin + '/?token=not-a-token', { waitUntil: 'domcontentloaded' });
    await waitFor(bad, 'a bad token did not show the auth error', () =>
      document.querySelector('#conn').dataset.state === 'auth' && document.querySelector('#token-dialog').open);
    result.authError = (await bad.textContent('#token-error')).trim();
    result.authHeader = await notLive(bad, 'en');
    if (opts.authShot) await bad.screenshot({ path: opts.authShot });

    // A snapshot refused as busy (503, Retry-After: 1): the page says which list and
    // why, and takes the lists again by itself. This page's console is not watched:
    // the refusal is the test's own.
    seen.phase = 'busy';
    const busy = await context.newPage();
    let refusals = 0;
    await busy.route(/\/v1\/snapshot\/doctors$/, (route) => {
      if (refusals++ > 0) return route.continue();
      return route.fulfill({
        status: 503,
        headers: { 'Retry-After': '1', 'Content-Type': 'application/json' },
        body: JSON.stringify({ error: 'too many snapshots in progress' }),
      });
    });
    await busy.goto(opts.url, { waitUntil: 'domcontentloaded' });
    await waitFor(busy, 'a busy snapshot did not say which list failed and why', () => {
      const b = document.querySelector('#banner');
      return !b.hidden && /Could not load the doctors \(doctors\): HTTP 503, too many snapshots in progress\. Trying again in 1 s/
        .test(document.querySelector('#banner-text').textContent);
    });
    result.busyMessage = await busy.textContent('#banner-text');
    await waitFor(busy, 'the page did not take the lists again after Retry-After', () =>
      document.querySelector('#conn').dataset.state === 'live' && document.querySelector('#banner').hidden &&
      document.querySelectorAll('#doctors > li').length > 0);
    await reloads(busy);
    await busy.close();

    // The same in Portuguese: a second browser whose language is pt-BR.
    seen.phase = 'pt-BR';
    ptBrowser = await chromium.launch({ executablePath: opts.chromium, headless: true, args: chromeArgs });
    const pt = await ptBrowser.newContext({ locale: 'pt-BR', viewport: { width: 1280, height: 800 } });
    const ptPage = await pt.newPage();
    watch(ptPage, 'pt-BR');
    await ptPage.goto(opts.url, { waitUntil: 'domcontentloaded' });
    await waitFor(ptPage, 'the pt-BR page did not go live', () =>
      document.querySelector('#conn').dataset.state === 'live' && document.querySelectorAll('#appointments > li').length > 0);
    await language(ptPage, 'pt-BR', tokenExp);
    const ptBad = await pt.newPage();
    watch(ptBad, 'bad');
    await ptBad.goto(base.origin + '/?token=not-a-token', { waitUntil: 'domcontentloaded' });
    await waitFor(ptBad, 'a bad token did not show the auth error in pt-BR', () =>
      document.querySelector('#conn').dataset.state === 'auth' && document.querySelector('#token-dialog').open);
    result.authHeaderPt = await notLive(ptBad, 'pt-BR');
    // The server's reason ("malformed token") in Portuguese, in the badge and the dialog.
    const ptReason = await ptBad.evaluate(() => ({
      badge: document.querySelector('#conn-label').textContent,
      dialog: document.querySelector('#token-dialog').textContent,
    }));
    if (ptReason.badge !== 'Erro de autenticação · token malformado' || !ptReason.dialog.includes('token malformado') ||
        /malformed/.test(ptReason.badge + ptReason.dialog)) {
      fail(`the pt-BR page words a refused token "${ptReason.badge}" / "${ptReason.dialog.trim()}", want "token malformado"`);
    }
    result.authReasonPt = ptReason.badge;
    result.languages = ['en', 'pt-BR'];

    // The bad token's snapshot requests are refused (401), which Chromium also logs.
    // Any other error is a bug.
    const errors = seen.errors.filter((e) => !(e.page === 'bad' && /\b401\b/.test(e.text)));
    if (errors.length) fail(`console errors: ${errors.map((e) => e.text).join(' | ')}`);
    if (seen.external.length) fail(`requests outside the notifier: ${seen.external.join(', ')}`);
    process.stdout.write(JSON.stringify({ done: result }) + '\n');
  } finally {
    if (ptBrowser) await ptBrowser.close();
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write((e instanceof Failure ? e.message : e.stack || String(e)) + '\n');
  process.exit(1);
}).then(() => process.exit(0)); // stdin stays open: do not wait for it
