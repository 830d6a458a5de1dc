// The console's end-to-end scenarios in headless Chromium (Debian's /usr/bin/chromium, driven by
// npm playwright-core), run by tests/console.rs against a server it started on port 0.
//
// Prints `STEP <name> ok` or `STEP <name> FAIL <reason>` per step, and one `OUTCOME <json>` line
// naming what the test then reads back over HTTP. Inbound webhooks are signed here as Twilio
// signs them: base64(HMAC-SHA1(auth token, URL + each parameter's name and value, sorted)).

import { createRequire } from 'node:module';
import { createHmac } from 'node:crypto';
import path from 'node:path';

const require = createRequire(path.join(process.env.SMSCTX_CLIENTS_NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const URL_ROOT = env('SMSCTX_URL');
const ADMIN = env('SMSCTX_ADMIN_TOKEN');
const ALICE = env('SMSCTX_ALICE_TOKEN');
const BOB = env('SMSCTX_BOB_TOKEN');
const TWILIO_TOKEN = env('SMSCTX_TWILIO_TOKEN');
const ACCOUNT = env('SMSCTX_TWILIO_ACCOUNT');
const ORG = env('SMSCTX_ORG');
const ORG_2 = env('SMSCTX_ORG_2');
const CUSTOMER = env('SMSCTX_CUSTOMER');
const SHOTS = env('SMSCTX_SCREENSHOTS');
const WAIT = 15000;

const outcome = {};
let agents = null;
let failed = false;

async function step(name, body) {
  if (failed) {
    console.log(`STEP ${name} FAIL skipped: an earlier step failed`);
    return;
  }
  try {
    await body();
    console.log(`STEP ${name} ok`);
  } catch (e) {
    failed = true;
    console.log(`STEP ${name} FAIL ${String(e && e.message ? e.message : e).split('\n')[0]}`);
    console.error(e);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

let sequence = 0;
/** Posts a signed Twilio inbound message; answers the HTTP status. */
async function webhook(to, from, text) {
  sequence += 1;
  const sid = `SM${String(Date.now()).padStart(16, '0')}${String(sequence).padStart(16, '0')}`;
  const url = `${URL_ROOT}/channels/sms/twilio`;
  const params = { AccountSid: ACCOUNT, Body: text, From: from, MessageSid: sid, To: to, NumMedia: '0' };
  const signed = url + Object.keys(params).sort().map((k) => k + params[k]).join('');
  const signature = createHmac('sha1', TWILIO_TOKEN).update(signed).digest('base64');
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Twilio-Signature': signature },
    body: new URLSearchParams(params).toString(),
  });
  expect(response.status === 200, `the webhook answered ${response.status}: ${await response.text()}`);
}

async function webApi(method, pathAndQuery, body) {
  const response = await fetch(`${URL_ROOT}/api/data/v9.2/${pathAndQuery}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json', Accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(response.ok, `${method} ${pathAndQuery}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

const browser = await chromium.launch({
  executablePath: process.env.SMSCTX_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
});

/** A fresh browser profile (its own sessionStorage) on the console, collecting page errors. */
async function openConsole(viewport = { width: 1280, height: 820 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    // A refused request is logged by the browser too; the console shows it in words.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  const response = await page.goto(`${URL_ROOT}/`);
  expect(response.status() === 200, `GET / answered ${response.status()}`);
  await page.waitForSelector('form.signin', { timeout: WAIT });
  return { context, page, errors };
}

async function signInWithToken(page, token) {
  await page.fill('#token', token);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#queue-title', { timeout: WAIT });
  await page.waitForSelector('.live-live', { timeout: WAIT });
}

const queueSubjects = (page) => page.$$eval('.queue-item .q-subject', (nodes) => nodes.map((n) => n.textContent));

try {
  // ---- the administrator: dev login, a live webhook, reply, close -------------------------
  const admin = await openConsole();
  const { page } = admin;
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });

  await step('the administrator signs in with the development login', async () => {
    await page.click('#dev-login');
    await page.waitForSelector('#queue-title', { timeout: WAIT });
    await page.waitForSelector('.live-live', { timeout: WAIT });
    expect(await page.isVisible('[data-section="admin"]'), 'the Administration link is shown to an administrator');
  });

  const text = `Hello from the browser test ${Date.now()}`;
  await step('an inbound webhook appears in the open queue without a reload', async () => {
    const before = navigations;
    await webhook(ORG, CUSTOMER, text);
    const item = page.locator('.queue-item', { hasText: text });
    await item.waitFor({ timeout: WAIT });
    expect(navigations === before, 'the page was reloaded');
    const badge = await item.locator('.badge').textContent();
    expect(badge === '1', `the unread count is ${badge}`);
    await page.screenshot({ path: path.join(SHOTS, 'queue.png') });
  });

  outcome.reply = `On our way ${Date.now()}`;
  await step('the agent opens the conversation and replies with Enter', async () => {
    await page.locator('.queue-item', { hasText: text }).click();
    await page.locator('.msg-customer', { hasText: text }).waitFor({ timeout: WAIT });
    outcome.conversation = await page.getAttribute('[data-conversation]', 'data-conversation');
    await page.fill('#reply-text', outcome.reply);
    await page.press('#reply-text', 'Enter');
    const reply = page.locator('.msg-agent', { hasText: outcome.reply });
    await reply.waitFor({ timeout: WAIT });
    await reply.locator('.ticks-queued').waitFor({ timeout: WAIT });
    expect((await page.inputValue('#reply-text')) === '', 'the reply box is emptied after sending');
    const badges = await page.locator('.current .badge').count();
    expect(badges === 0, 'the open conversation has no unread count');
  });

  await step('a second customer message arrives live in the open conversation', async () => {
    const more = `And one more thing ${Date.now()}`;
    await webhook(ORG, CUSTOMER, more);
    await page.locator('.msg-customer', { hasText: more }).waitFor({ timeout: WAIT });
    await page.screenshot({ path: path.join(SHOTS, 'conversation.png') });
  });

  await step('the agent closes the conversation', async () => {
    await page.click('text=Close conversation');
    await page.waitForSelector('dialog[open]', { timeout: WAIT });
    await page.click('dialog[open] button.primary');
    await page.waitForFunction(() => document.getElementById('thread-state')?.textContent === 'Closed', null, { timeout: WAIT });
    await page.locator('.queue-item', { hasText: text }).waitFor({ state: 'detached', timeout: WAIT });
    expect(await page.isDisabled('#reply-text'), 'a closed conversation takes no reply');
  });

  outcome.channel = '+14252306552';
  await step('the administrator adds a channel', async () => {
    await page.click('[data-section="admin"]');
    await page.waitForSelector('#add-channel', { timeout: WAIT });
    await page.click('#add-channel');
    await page.waitForSelector('dialog[open] #ch-number', { timeout: WAIT });
    await page.fill('#ch-number', outcome.channel);
    await page.fill('#ch-secret', 'a-new-channel-secret');
    await page.fill('#ch-account', ACCOUNT);
    await page.fill('#ch-name', 'Browser test desk');
    await page.click('dialog[open] button.primary');
    await page.locator('td', { hasText: outcome.channel }).first().waitFor({ timeout: WAIT });
    await page.screenshot({ path: path.join(SHOTS, 'admin-channels.png') });
  });

  await step('a refused request shows the Dataverse message in words', async () => {
    await page.click('#add-channel');
    await page.fill('#ch-number', '4252306549');
    await page.fill('#ch-secret', 'x');
    await page.click('dialog[open] button.primary');
    const error = page.locator('dialog[open] .dialog-error');
    await error.waitFor({ state: 'visible', timeout: WAIT });
    const words = await error.textContent();
    expect(words.length > 10 && !words.includes('undefined'), `the error reads: ${words}`);
    await page.keyboard.press('Escape');
  });

  await step('the saved views switch, sort and page', async () => {
    await page.click('[data-section="views"]');
    await page.waitForSelector('#view-switcher', { timeout: WAIT });
    const options = await page.$$eval('#view-switcher option', (o) => o.map((x) => x.textContent));
    expect(options.includes('Active SMS Engagement Contexts'), `views: ${options}`);
    await page.selectOption('#view-switcher', { label: 'Inactive SMS Engagement Contexts' });
    await page.waitForFunction(() => document.querySelector('.grid tbody td') !== null, null, { timeout: WAIT });
    await page.click('.grid th button');
    await page.waitForSelector('th[aria-sort]', { timeout: WAIT });
  });
  await step("the administrator's page logged no script errors", async () => {
    expect(admin.errors.length === 0, `errors: ${admin.errors.join(' | ')}`);
  });

  // ---- a Basic-depth agent sees only their own conversations --------------------------------
  await step("a Basic-depth agent does not see another agent's conversations", async () => {
    await webhook(ORG_2, '+12015550177', 'A message for alice');
    const alice = await openConsole();
    await signInWithToken(alice.page, ALICE);
    await alice.page.locator('.queue-item', { hasText: ORG_2 }).waitFor({ timeout: WAIT });

    const bob = await openConsole({ width: 375, height: 740 });
    await signInWithToken(bob.page, BOB);
    await bob.page.locator('.queue-item', { hasText: "Bob's own conversation" }).waitFor({ timeout: WAIT });
    // Live: a new message for alice, then a conversation for bob; once bob's shows up, the
    // queue has been refetched after alice's message too.
    await webhook(ORG_2, '+12015550177', 'Another message for alice');
    const me = await (await fetch(`${URL_ROOT}/api/data/v9.2/WhoAmI`, { headers: { Authorization: `Bearer ${BOB}` } })).json();
    await webApi('POST', 'msdyn_ocliveworkitems', { subject: "Bob's second conversation", 'ownerid@odata.bind': `/systemusers(${me.UserId})` });
    await bob.page.locator('.queue-item', { hasText: "Bob's second conversation" }).waitFor({ timeout: WAIT });
    outcome.bob_queue = await queueSubjects(bob.page);
    expect(!outcome.bob_queue.some((s) => s.includes(ORG_2)), `bob sees ${outcome.bob_queue}`);
    expect(!(await bob.page.isVisible('[data-section="admin"]')), 'no Administration for an agent');
    const width = await bob.page.evaluate(() => document.documentElement.scrollWidth);
    expect(width <= 375, `the page is ${width}px wide at 375px`);
    await bob.page.screenshot({ path: path.join(SHOTS, 'basic-agent-375px.png') });
    agents = { alice, bob };
  });

  await step('the administrator assigns a conversation to an agent, who sees it live', async () => {
    await page.click('[data-section="queue"]');
    await page.locator('.queue-item', { hasText: ORG_2 }).click();
    await page.locator('.msg-customer', { hasText: 'Another message for alice' }).waitFor({ timeout: WAIT });
    await page.click('text=Assign…');
    await page.waitForSelector('dialog[open] #assign-to option', { state: 'attached', timeout: WAIT });
    await page.selectOption('#assign-to', { label: 'bob Agent' });
    await page.click('dialog[open] button.primary');
    await page.waitForSelector('dialog[open]', { state: 'detached', timeout: WAIT });
    await agents.bob.page.locator('.queue-item', { hasText: ORG_2 }).waitFor({ timeout: WAIT });
    await agents.alice.page.locator('.queue-item', { hasText: ORG_2 }).waitFor({ state: 'detached', timeout: WAIT });
  });

  await step('the administrator shares it back with the first agent (GrantAccess)', async () => {
    await page.click('text=Share…');
    await page.waitForSelector('dialog[open] #share-with option', { state: 'attached', timeout: WAIT });
    await page.selectOption('#share-with', { label: 'alice Agent' });
    await page.click('dialog[open] button.primary');
    await page.waitForSelector('dialog[open]', { state: 'detached', timeout: WAIT });
    await agents.alice.page.locator('.queue-item', { hasText: ORG_2 }).waitFor({ timeout: WAIT });
  });

  await step("the agents' pages logged no script errors", async () => {
    const errors = [...agents.bob.errors, ...agents.alice.errors, ...admin.errors];
    expect(errors.length === 0, `page errors: ${errors.join(' | ')}`);
  });
} finally {
  console.log(`OUTCOME ${JSON.stringify(outcome)}`);
  await browser.close();
}
