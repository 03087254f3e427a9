// End-to-end check of the live console (/console/) in headless Chromium (Debian's, driven by
// playwright-core), against a running kvs-signaling over TLS whose development CA this script
// trusts in a fresh NSS database (nothing is ignored), as browser.mjs does.
//
// What it checks:
//   - without the cookie, /console/ is the sign-in page (no channel table, 401), a wrong token
//     is refused, and the state API answers 401;
//   - the printed URL with its token signs in: the token leaves the address bar, the page shows
//     the channel table and its event stream goes live;
//   - a channel made with the page's form shows up with its TTL;
//   - a master and a viewer of the official KVS WebRTC SDK (SignalingClient, in Node, over real
//     sockets, signed with the access key; the WSS endpoint from GetSignalingChannelEndpoint)
//     show up in the channel's row within 1000 ms of the SDK's 'open' event; the viewer's SDP
//     offer shows up as a relayed SDP_OFFER event within 1000 ms of being sent; once the viewer
//     closes, it leaves the row within 1000 ms and a `closed` event names it. The times are
//     taken in the page, by a MutationObserver, and compared with Node's (one machine, one
//     clock), so the harness's own polling adds nothing;
//   - the test call: two more pages (the same browser context, so the same cookie) start a
//     MASTER and a VIEWER call on the channel with Chromium's fake camera, reach "data channel
//     open", show each other's video, and a chat line typed on each side shows up on the other;
//   - deleting the channel from the page (its confirm dialog accepted) removes its row and
//     closes the calls' signaling connections;
//   - no page logs a Content-Security-Policy violation or throws.
// Full-page screenshots of each step go to KVS_SCREENSHOTS; their paths are printed.
//
// Inputs, from the environment:
//   KVS_CONSOLE_URL          the console URL `serve` printed (https://HOST:PORT/console/?token=...)
//   KVS_CA_FILE              the development CA (PEM) the server's certificate chains to
//   KVS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   for the SDK's REST call and connects
//   KVS_SCREENSHOTS          a directory for the screenshots
//   KVS_CONSOLE_TIMEOUT_MS   (60000) the whole run
//
// Exit status: 0 when every check passed, 1 otherwise (each failure on a `console: FAILED:` line).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { WebSocket as NodeWebSocket } from 'ws';
import AWS from 'aws-sdk';
import KVSWebRTC from 'amazon-kinesis-video-streams-webrtc';

const { SignalingClient, Role } = KVSWebRTC;

const started = Date.now();
const log = (...parts) => console.log(`[console +${String(Date.now() - started).padStart(5)} ms]`, ...parts);

const env = (name, fallback) => {
    const value = process.env[name];
    if (value) return value;
    if (fallback !== undefined) return fallback;
    console.error(`console: FAILED: ${name} is not set`);
    process.exit(1);
};
const config = {
    consoleUrl: env('KVS_CONSOLE_URL'),
    ca: env('KVS_CA_FILE'),
    region: env('KVS_REGION'),
    accessKeyId: env('AWS_ACCESS_KEY_ID'),
    secretAccessKey: env('AWS_SECRET_ACCESS_KEY'),
    screenshots: env('KVS_SCREENSHOTS'),
    timeoutMs: Number(env('KVS_CONSOLE_TIMEOUT_MS', '60000')),
};
const deadline = started + config.timeoutMs;
/// How soon the page must show what happened on a socket.
const PROMPT_MS = 1000;
/// How long a step waits for something that is not timed, and a timed thing that came late.
const STEP_MS = 10_000;

const consoleOrigin = new URL(config.consoleUrl).origin;
const consolePage = `${consoleOrigin}/console/`;
const suffix = Math.random().toString(36).slice(2, 8);
const channelName = `console-e2e-${suffix}`;
const viewerId = `sdk-viewer-${suffix}`;
const callViewerId = `call-viewer-${suffix}`;

// The development CA, for Node's own TLS (the AWS SDK's calls, the SDK's WebSocket).
const ca = readFileSync(config.ca);
class TrustingWebSocket extends NodeWebSocket {
    constructor(url, protocols) {
        super(url, protocols, { ca });
    }
}
// The SDK opens `new WebSocket(url)` with the global; Node 20 has none.
globalThis.WebSocket = TrustingWebSocket;

let failures = 0;
const failed = (message) => {
    failures += 1;
    console.error(`console: FAILED: ${message}`);
};
let phase = 'starting';
const passed = (message) => log(`ok: ${message}`);

// A fresh profile whose NSS database trusts the development CA; Chromium on Linux reads it
// from $HOME/.pki/nssdb.
const home = mkdtempSync(join(tmpdir(), 'kvs-console-'));
process.on('exit', () => rmSync(home, { recursive: true, force: true }));
const nssdb = join(home, '.pki/nssdb');
mkdirSync(nssdb, { recursive: true });
execFileSync('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
execFileSync('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'kvs-signaling dev CA', '-i', config.ca]);
mkdirSync(config.screenshots, { recursive: true });

const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    env: { ...process.env, HOME: home },
    args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // Host candidates as addresses, not mDNS names: this machine has no mDNS responder.
        '--disable-features=WebRtcHideLocalIpsWithMdns',
        // The test call's camera and microphone: a generated picture and tone, no prompt.
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
    ],
});
log(`chromium ${browser.version()}, console at ${consolePage}`);

const clients = [];
// Past the deadline, whatever is under way: say where, and stop (playwright ends Chromium).
const timer = setTimeout(() => {
    failed(`timed out after ${config.timeoutMs} ms, ${phase}`);
    for (const client of clients) client.close();
    process.exit(1);
}, config.timeoutMs);

const viewport = { width: 1280, height: 900 };
const screenshots = [];
async function screenshot(page, name) {
    const path = join(config.screenshots, `${name}.png`);
    try {
        await page.screenshot({ path, fullPage: true });
        screenshots.push(path);
        log(`screenshot: ${path}`);
    } catch (error) {
        failed(`screenshot ${name}: ${error.message}`);
    }
}

// Every page reports its errors and Content-Security-Policy refusals as failures.
const cspViolations = [];
async function openPage(context, name) {
    const page = await context.newPage();
    page.on('console', (message) => {
        const text = message.text();
        if (message.type() === 'error' || message.type() === 'warning') log(`${name} console ${message.type()}: ${text}`);
        if (/Content[ -]Security[ -]Policy/i.test(text)) cspViolations.push(`${name}: ${text}`);
    });
    page.on('pageerror', (error) => failed(`${name}: page error: ${error.message}`));
    page.on('response', (response) => {
        if (response.status() >= 400) log(`${name}: ${response.status()} for ${response.request().method()} ${response.url()}`);
    });
    return page;
}

function left() {
    return Math.max(1, Math.min(STEP_MS, deadline - Date.now()));
}

// Watches, in the page, for elements matching `selector` (and holding `text`, if given): when
// one first appears and when, after that, none is left. A MutationObserver takes the times, on
// the machine's clock, as the DOM changes.
async function installWatcher(page) {
    await page.evaluate(() => {
        const items = new Map();
        const present = ({ selector, text }) =>
            [...document.querySelectorAll(selector)].some((node) => !text || node.textContent.includes(text));
        const check = () => {
            const now = Date.now();
            for (const item of items.values()) {
                const here = present(item);
                if (here && item.appeared === undefined) item.appeared = now;
                if (!here && item.appeared !== undefined && item.gone === undefined) item.gone = now;
            }
        };
        new MutationObserver(check).observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true });
        window.testWatch = {
            add(name, selector, text) {
                items.set(name, { selector, text });
                check();
            },
            get(name) {
                const { appeared, gone } = items.get(name);
                return { appeared, gone };
            },
        };
    });
}

async function watch(page, name, selector, text) {
    await page.evaluate(([n, s, t]) => window.testWatch.add(n, s, t), [name, selector, text]);
}

// Waits for the watched thing to appear (or to go), and returns the page's time of it.
async function watched(page, name, what) {
    try {
        await page.waitForFunction(([n, w]) => window.testWatch.get(n)[w] !== undefined, [name, what], {
            timeout: left(),
            polling: 50,
        });
    } catch {
        return undefined;
    }
    return (await page.evaluate((n) => window.testWatch.get(n), name))[what];
}

// Checks that `name` appeared (or went) within PROMPT_MS of `since` (Node's clock).
async function prompt(page, name, what, since, description) {
    const at = await watched(page, name, what);
    if (at === undefined) {
        failed(`${description}: did not happen within ${STEP_MS} ms`);
        return false;
    }
    const took = at - since;
    if (took > PROMPT_MS) {
        failed(`${description}: took ${took} ms, more than ${PROMPT_MS} ms`);
        return false;
    }
    passed(`${description}: after ${took} ms`);
    return true;
}

function must(condition, message) {
    if (!condition) throw new Error(message);
}

async function textOf(page, selector) {
    return (await page.textContent(selector).catch(() => null)) ?? '(none)';
}

// --- the SDK's clients -----------------------------------------------------------------------

function signalingClient(role, channelARN, endpoint, clientId) {
    const client = new SignalingClient({
        channelARN,
        channelEndpoint: endpoint,
        role,
        clientId,
        region: config.region,
        credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
        systemClockOffset: 0,
    });
    clients.push(client);
    client.on('error', (event) => log(`${clientId ?? 'master'}: SDK error: ${event?.message ?? event}`));
    client.on('statusResponse', (status) => failed(`${clientId ?? 'master'}: STATUS_RESPONSE ${JSON.stringify(status)}`));
    return client;
}

// Opens the client; resolves with Node's time of its 'open' event.
function open(client, what) {
    return new Promise((resolve, reject) => {
        const timeout = setTimeout(() => reject(new Error(`${what}: not open within ${STEP_MS} ms`)), STEP_MS);
        client.once('open', () => {
            clearTimeout(timeout);
            resolve(Date.now());
        });
        client.open();
    });
}

async function wssEndpoint(channelARN, role) {
    const kinesisVideo = new AWS.KinesisVideo({
        region: config.region,
        endpoint: consoleOrigin,
        credentials: new AWS.Credentials(config.accessKeyId, config.secretAccessKey),
        httpOptions: { agent: new Agent({ ca }) },
        maxRetries: 0,
    });
    const answer = await kinesisVideo
        .getSignalingChannelEndpoint({
            ChannelARN: channelARN,
            SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS'], Role: role },
        })
        .promise();
    const wss = answer.ResourceEndpointList.find((e) => e.Protocol === 'WSS')?.ResourceEndpoint;
    must(wss, `GetSignalingChannelEndpoint gave no WSS endpoint: ${JSON.stringify(answer)}`);
    return wss;
}

// --- the steps -------------------------------------------------------------------------------

async function signedOut() {
    phase = 'signed out';
    const context = await browser.newContext({ viewport });
    try {
        const page = await openPage(context, 'signed-out');
        const response = await page.goto(consolePage);
        must(response.status() === 401, `/console/ without the cookie answered ${response.status()}, not 401`);
        must((await page.$('#channels')) === null, '/console/ without the cookie shows the channel table');
        must((await page.$('#token-form')) !== null, '/console/ without the cookie has no sign-in form');
        const apiStatus = await page.evaluate(() => fetch('/console/api/state').then((r) => r.status));
        must(apiStatus === 401, `/console/api/state without the cookie answered ${apiStatus}, not 401`);
        await screenshot(page, '01-signed-out');
        const wrong = await page.goto(`${consolePage}?token=not-the-token-0123456789`);
        must(wrong.status() === 401, `a wrong token answered ${wrong.status()}, not 401`);
        must((await page.$('#channels')) === null, 'a wrong token shows the channel table');
        passed('without the cookie, /console/ is the sign-in page; a wrong token is refused; the API answers 401');
    } finally {
        await context.close();
    }
}

async function signIn(page) {
    phase = 'signing in';
    const response = await page.goto(config.consoleUrl);
    must(response.ok(), `the console URL answered ${response.status()}`);
    must(page.url() === consolePage, `after signing in the page is at ${page.url()}, not ${consolePage} (the token should leave the address bar)`);
    await page.waitForSelector('#channels', { timeout: left() });
    await page.waitForFunction(() => document.getElementById('stream-state').textContent === 'live', undefined, { timeout: left() })
        .catch(async () => {
            throw new Error(`the event stream did not go live (badge: ${await textOf(page, '#stream-state')})`);
        });
    await page.waitForFunction(() => window.kvsConsole && window.kvsConsole.state(), undefined, { timeout: left() });
    passed('the token URL signs in: the channel table shows and the event stream is live');
    must(await page.isHidden('#videos'), 'the test call\'s videos show before a call');
    await installWatcher(page);
    await screenshot(page, '02-signed-in');
}

async function createChannel(page) {
    phase = 'creating the channel with the form';
    const row = `#channels tr[data-channel="${channelName}"]`;
    await page.fill('#create-name', channelName);
    await page.fill('#create-ttl', '30');
    await page.click('#create-form button[type="submit"]');
    await page.waitForSelector(row, { timeout: left() }).catch(async () => {
        throw new Error(`the created channel has no row (result: ${await textOf(page, '#create-result')})`);
    });
    const result = await textOf(page, '#create-result');
    must(result.startsWith('created arn:aws:kinesisvideo:'), `the form says ${JSON.stringify(result)}`);
    const ttl = await textOf(page, `${row} td:nth-child(2)`);
    must(ttl === '30 s', `the row shows the TTL ${JSON.stringify(ttl)}, not "30 s"`);
    const channel = await page.evaluate((name) => window.kvsConsole.state().channels.find((c) => c.name === name), channelName);
    must(channel && channel.arn.startsWith(`arn:aws:kinesisvideo:${config.region}:`) && channel.arn.includes(`:channel/${channelName}/`),
        `the state has no ARN of this region for ${channelName}: ${JSON.stringify(channel)}`);
    must((await textOf(page, row)).includes(channel.arn), 'the row does not show the ARN');
    passed(`created ${channel.arn} with the form; its row shows TTL 30 s`);
    // The channel's name opens its configuration (DescribeSignalingChannel and its tags).
    await page.click(`a[data-describe="${channel.arn}"]`);
    await page.waitForSelector('#details:not([hidden])', { timeout: left() });
    const details = JSON.parse(await textOf(page, '#details-body'));
    must(details.ChannelInfo?.ChannelARN === channel.arn && details.ChannelInfo?.SingleMasterConfiguration?.MessageTtlSeconds === 30,
        `the configuration shown is not the channel's: ${JSON.stringify(details)}`);
    passed('its name shows its configuration: the ARN and MessageTtlSeconds 30');
    await screenshot(page, '03-channel-created');
    return channel.arn;
}

async function sdkClients(page, arn) {
    phase = 'the SDK clients';
    const row = `#channels tr[data-channel="${channelName}"]`;
    const endpoint = await wssEndpoint(arn, 'VIEWER');
    must(endpoint === `wss://${new URL(consoleOrigin).host}`, `the WSS endpoint ${endpoint} is not the console's host`);
    passed(`GetSignalingChannelEndpoint: ${endpoint}`);

    await watch(page, 'master', `${row} td.master [data-client="master"][data-state="current"]`);
    const master = signalingClient(Role.MASTER, arn, await wssEndpoint(arn, 'MASTER'));
    const offers = [];
    const gotOffer = new Promise((resolve) => master.on('sdpOffer', (offer, sender) => {
        offers.push({ offer, sender });
        resolve();
    }));
    phase = 'the SDK master connecting';
    const masterOpen = await open(master, 'master');
    await prompt(page, 'master', 'appeared', masterOpen, 'the SDK master shows in the row');

    await watch(page, 'viewer', `${row} td.viewers [data-client="${viewerId}"][data-state="current"]`);
    const viewer = signalingClient(Role.VIEWER, arn, endpoint, viewerId);
    phase = 'the SDK viewer connecting';
    const viewerOpen = await open(viewer, 'viewer');
    await prompt(page, 'viewer', 'appeared', viewerOpen, `the SDK viewer ${viewerId} shows in the row`);
    const entry = await textOf(page, `${row} [data-client="${viewerId}"]`);
    must(/127\.0\.0\.1:\d+/.test(entry), `the viewer's entry names no remote address: ${JSON.stringify(entry)}`);
    await watch(page, 'connected-event', `#events li[data-type="connected"][data-channel="${channelName}"]`, viewerId);
    must((await watched(page, 'connected-event', 'appeared')) !== undefined, `no "connected" event names ${viewerId}`);
    await screenshot(page, '04-viewer-connected');

    phase = 'the SDK viewer offering';
    await watch(page, 'offer', `#events li[data-type="relayed"][data-message-type="SDP_OFFER"][data-channel="${channelName}"]`);
    const offer = { type: 'offer', sdp: `v=0\r\no=- ${suffix.length} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n` };
    const offerSent = Date.now();
    viewer.sendSdpOffer(offer);
    await prompt(page, 'offer', 'appeared', offerSent, 'the relayed SDP_OFFER shows in the events');
    const offerText = await textOf(page, `#events li[data-type="relayed"][data-message-type="SDP_OFFER"][data-channel="${channelName}"]`);
    must(offerText.includes(`${viewerId} → master`), `the relayed offer's event does not say ${viewerId} → master: ${JSON.stringify(offerText)}`);
    await Promise.race([gotOffer, new Promise((resolve) => setTimeout(resolve, left()))]);
    must(offers.length === 1 && offers[0].sender === viewerId && offers[0].offer.sdp === offer.sdp,
        `the SDK master did not get the viewer's offer intact: ${JSON.stringify(offers)}`);
    passed('the SDK master got the offer');
    await screenshot(page, '05-offer-relayed');

    phase = 'the SDK viewer closing';
    await watch(page, 'closed-event', `#events li[data-type="closed"][data-channel="${channelName}"]`, viewerId);
    const closing = Date.now();
    viewer.close();
    await prompt(page, 'viewer', 'gone', closing, `the SDK viewer ${viewerId} leaves the row`);
    await prompt(page, 'closed-event', 'appeared', closing, `a "closed" event names ${viewerId}`);
    await screenshot(page, '06-viewer-closed');

    phase = 'the SDK master closing';
    master.close();
    must((await watched(page, 'master', 'gone')) !== undefined, 'the SDK master did not leave the row');
    passed('the SDK master left the row');
}

async function callPage(context, arn, role) {
    const name = `call-${role.toLowerCase()}`;
    const page = await openPage(context, name);
    await page.goto(consolePage);
    await page.waitForSelector(`#call-channel option[value="${arn}"]`, { state: 'attached', timeout: left() });
    await page.selectOption('#call-channel', arn);
    await page.selectOption('#call-role', role);
    if (role === 'VIEWER') await page.fill('#call-client-id', callViewerId);
    must(await page.isChecked('#call-media'), 'the camera box is not checked by default');
    await page.click('#call-start');
    return page;
}

async function callState(page, role, states) {
    try {
        await page.waitForFunction((wanted) => wanted.includes(document.getElementById('call-state').dataset.state), states, {
            timeout: left(),
            polling: 50,
        });
    } catch {
        const chat = await page.$$eval('#chat li', (items) => items.map((li) => li.textContent));
        throw new Error(`the ${role} call did not reach ${states.join(' or ')}: state ${JSON.stringify(await textOf(page, '#call-state'))}, chat ${JSON.stringify(chat)}`);
    }
}

async function chatShows(page, role, line) {
    await page.waitForFunction((wanted) => [...document.querySelectorAll('#chat li')].some((li) => li.textContent === wanted), line, {
        timeout: left(),
        polling: 50,
    }).catch(async () => {
        const chat = await page.$$eval('#chat li', (items) => items.map((li) => li.textContent));
        throw new Error(`the ${role} page's chat does not show ${JSON.stringify(line)}: ${JSON.stringify(chat)}`);
    });
}

async function say(page, text) {
    await page.fill('#chat-text', text);
    await page.press('#chat-text', 'Enter');
}

// The page's videos, with the size of the picture they play (0 before a frame).
async function playing(page, role, selector) {
    await page.waitForFunction((s) => {
        const video = document.querySelector(s);
        return video && video.videoWidth > 0 && video.readyState >= 2;
    }, selector, { timeout: left(), polling: 100 }).catch(() => {
        throw new Error(`the ${role} page's ${selector} shows no picture`);
    });
}

async function testCall(context, page, arn) {
    phase = 'the test call: master';
    const master = await callPage(context, arn, 'MASTER');
    await callState(master, 'master', ['waiting for viewers']);
    passed('the MASTER test call waits for viewers');
    phase = 'the test call: viewer';
    const viewer = await callPage(context, arn, 'VIEWER');
    phase = 'the test call: connecting';
    await callState(viewer, 'viewer', ['data channel open']);
    await callState(master, 'master', ['data channel open']);
    passed('both test calls reached "data channel open"');

    phase = 'the test call: chat';
    await say(master, `hello from the master ${suffix}`);
    await chatShows(viewer, 'viewer', `master: hello from the master ${suffix}`);
    await say(viewer, `hello from the viewer ${suffix}`);
    await chatShows(master, 'master', `${callViewerId}: hello from the viewer ${suffix}`);
    await chatShows(master, 'master', `me: hello from the master ${suffix}`);
    passed('a chat line typed on each side shows on the other');

    phase = 'the test call: video';
    await playing(master, 'master', '#local-video');
    await playing(viewer, 'viewer', '#local-video');
    await playing(viewer, 'viewer', '#remote-videos video#remote-master');
    await playing(master, 'master', `#remote-videos video#remote-${callViewerId}`);
    passed('each side plays its camera and the other\'s');

    // The console page shows the call's two parties and its relayed answer.
    const row = `#channels tr[data-channel="${channelName}"]`;
    await page.waitForSelector(`${row} td.master [data-client="master"]`, { timeout: left() });
    await page.waitForSelector(`${row} td.viewers [data-client="${callViewerId}"]`, { timeout: left() });
    await page.waitForSelector(`#events li[data-type="relayed"][data-message-type="SDP_ANSWER"][data-channel="${channelName}"]`, {
        state: 'attached',
        timeout: left(),
    });
    passed('the console shows the call\'s master and viewer and the relayed SDP_ANSWER');
    await screenshot(master, '07-call-master');
    await screenshot(viewer, '08-call-viewer');
    await screenshot(page, '09-console-during-call');
    return { master, viewer };
}

async function deleteChannel(page, arn, calls) {
    phase = 'deleting the channel';
    const row = `#channels tr[data-channel="${channelName}"]`;
    await watch(page, 'row', row);
    let asked = null;
    page.once('dialog', async (dialog) => {
        asked = `${dialog.type()}: ${dialog.message()}`;
        await dialog.accept();
    });
    await page.click(`button[data-delete="${channelName}"]`);
    must((await watched(page, 'row', 'gone')) !== undefined, 'the deleted channel\'s row is still there');
    must(asked && asked.startsWith('confirm: ') && asked.includes(channelName), `the confirm dialog was ${JSON.stringify(asked)}`);
    passed(`the row is gone after the confirm dialog (${asked})`);
    must(!(await page.evaluate((a) => window.kvsConsole.state().channels.some((c) => c.arn === a), arn)), 'the state still lists the channel');
    must(await page.isHidden('#details'), 'the deleted channel\'s configuration is still shown');
    for (const [role, callPage] of Object.entries(calls)) {
        await callPage.waitForFunction(() => document.getElementById('call-state').textContent.startsWith('signaling closed'), undefined, {
            timeout: left(),
        }).catch(async () => {
            throw new Error(`the ${role} call's signaling did not close with the channel: ${await textOf(callPage, '#call-state')}`);
        });
    }
    passed('deleting the channel closed both calls\' signaling');
    await screenshot(page, '10-channel-deleted');
}

try {
    await signedOut();
    const context = await browser.newContext({ viewport });
    const page = await openPage(context, 'console');
    await signIn(page);
    const arn = await createChannel(page);
    await sdkClients(page, arn);
    const calls = await testCall(context, page, arn);
    await deleteChannel(page, arn, calls);
    await context.close();
} catch (error) {
    failed(`${phase}: ${error.message}`);
    for (const context of browser.contexts()) {
        for (const [index, page] of context.pages().entries()) await screenshot(page, `failure-${index}`);
    }
} finally {
    clearTimeout(timer);
    for (const client of clients) client.close();
    await browser.close();
}
for (const violation of new Set(cspViolations)) {
    failed(`Content-Security-Policy (${cspViolations.filter((v) => v === violation).length} times): ${violation}`);
}
log(`screenshots: ${screenshots.length} in ${config.screenshots}`);
if (failures === 0) {
    console.log(`console: PASSED in ${Date.now() - started} ms`);
    process.exit(0);
}
process.exit(1);
