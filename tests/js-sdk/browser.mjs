// End-to-end check of kvs-signaling in a real browser: the official KVS WebRTC JavaScript SDK
// and the AWS SDK for JavaScript (v2's browser bundle) in headless Chromium (Debian's, driven
// by playwright-core), under full web security: the pages are served from an origin of their
// own, so every REST call crosses origins and needs the server's CORS answers, and the server's
// TLS certificate is verified against its development CA, which this script adds to the NSS
// database of a fresh profile (nothing is ignored).
//
// Twice: once with the pages' clocks right, once with them 15 minutes ahead, which the server
// refuses ("Signature not yet current") until the AWS SDK corrects its clock from the answers'
// Date header; the SignalingClient then signs with the corrected clock. Each time a master page
// and a viewer page make their own REST calls (the master creates the channel), connect,
// exchange offer, answer and candidates, reach connectionState "connected" and pass a
// data-channel message each way.
//
// Inputs, from the environment:
//   KVS_ENDPOINT            the server's HTTPS URL (its control plane)
//   KVS_CA_FILE             the development CA (PEM) the server's certificate chains to
//   KVS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
//   KVS_BROWSER_TIMEOUT_MS  (60000) the whole run
//   KVS_SCREENSHOTS         a directory for a screenshot of each page at the end (optional)
//
// Exit status: 0 when both runs passed, 1 otherwise.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const started = Date.now();
const log = (...parts) => console.log(`[browser +${String(Date.now() - started).padStart(5)} ms]`, ...parts);

const env = (name, fallback) => {
    const value = process.env[name];
    if (value) return value;
    if (fallback !== undefined) return fallback;
    console.error(`browser: ${name} is not set`);
    process.exit(1);
};
const config = {
    endpoint: env('KVS_ENDPOINT'),
    ca: env('KVS_CA_FILE'),
    region: env('KVS_REGION'),
    accessKeyId: env('AWS_ACCESS_KEY_ID'),
    secretAccessKey: env('AWS_SECRET_ACCESS_KEY'),
    timeoutMs: Number(env('KVS_BROWSER_TIMEOUT_MS', '60000')),
    screenshots: process.env.KVS_SCREENSHOTS,
};
const deadline = started + config.timeoutMs;

// The pages and the SDKs' browser bundles, from another origin than the server's.
const files = {
    '/index.html': [join(here, 'browser/index.html'), 'text/html'],
    '/peer.js': [join(here, 'browser/peer.js'), 'text/javascript'],
    '/aws-sdk.min.js': [require.resolve('aws-sdk/dist/aws-sdk.min.js'), 'text/javascript'],
    '/kvs-webrtc.min.js': [
        require.resolve('amazon-kinesis-video-streams-webrtc/dist/kvs-webrtc.min.js'),
        'text/javascript',
    ],
};
const pages = createServer((request, response) => {
    const file = files[new URL(request.url, 'http://page').pathname];
    if (!file) {
        response.writeHead(404).end();
        return;
    }
    response.writeHead(200, { 'content-type': file[1] }).end(readFileSync(file[0]));
});
await new Promise((resolve) => pages.listen(0, '127.0.0.1', resolve));
const pageOrigin = `http://127.0.0.1:${pages.address().port}`;
log(`pages at ${pageOrigin}, server at ${config.endpoint}`);

// A fresh profile whose NSS database trusts the development CA, as a user's would after
// `certutil -A`; Chromium on Linux reads it from $HOME/.pki/nssdb.
const home = mkdtempSync(join(tmpdir(), 'kvs-browser-'));
const nssdb = join(home, '.pki/nssdb');
mkdirSync(nssdb, { recursive: true });
execFileSync('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
execFileSync('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'kvs-signaling dev CA', '-i', config.ca]);

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
    ],
});
log(`chromium ${browser.version()}`);

let failures = 0;
const failed = (message) => {
    failures += 1;
    console.error(`browser: FAILED: ${message}`);
};

// A page at `skewMs` from the real time: Date is replaced before any script of the page runs.
async function openPage(context, role, settings, skewMs) {
    const page = await context.newPage();
    page.on('console', (message) => log(`${role} console: ${message.text()}`));
    page.on('pageerror', (error) => failed(`${role} page error: ${error.message}`));
    if (skewMs) {
        await page.addInitScript((skew) => {
            const RealDate = Date;
            class SkewedDate extends RealDate {
                constructor(...args) {
                    if (args.length === 0) super(RealDate.now() + skew);
                    else super(...args);
                }
                static now() {
                    return RealDate.now() + skew;
                }
            }
            globalThis.Date = SkewedDate;
        }, skewMs);
    }
    const fragment = encodeURIComponent(JSON.stringify({ role, ...settings }));
    await page.goto(`${pageOrigin}/index.html#${fragment}`);
    return page;
}

async function waitFor(page, role, predicate, what) {
    const left = Math.max(1, deadline - Date.now());
    try {
        await page.waitForFunction(predicate, undefined, { timeout: left, polling: 50 });
    } catch (error) {
        const status = await page.evaluate(() => window.kvsPeer).catch(() => undefined);
        throw new Error(`${role}: ${what} did not happen (${status ? `state ${status.state}, error ${status.error}` : error.message})`);
    }
    const status = await page.evaluate(() => window.kvsPeer);
    if (status.error) throw new Error(`${role}: ${status.error}`);
    return status;
}

async function run(name, skewMs) {
    const context = await browser.newContext();
    const suffix = `${name}-${Math.random().toString(36).slice(2, 8)}`;
    const settings = {
        endpoint: config.endpoint,
        region: config.region,
        accessKeyId: config.accessKeyId,
        secretAccessKey: config.secretAccessKey,
        channelName: `browser-${suffix}`,
    };
    let master;
    let viewer;
    try {
        master = await openPage(context, 'MASTER', settings, skewMs);
        await waitFor(master, 'master', () => window.kvsPeer.state === 'signaling open' || window.kvsPeer.error, 'signaling open');
        viewer = await openPage(context, 'VIEWER', { ...settings, clientId: `viewer-${suffix}` }, skewMs);
        const viewerStatus = await waitFor(viewer, 'viewer', () => window.kvsPeer.done || window.kvsPeer.error, 'connected with data both ways');
        const masterStatus = await waitFor(master, 'master', () => window.kvsPeer.done || window.kvsPeer.error, 'connected with data both ways');
        if (skewMs) {
            // The SDK must have learned (about) the skew from the server's Date header.
            for (const [role, status] of [['master', masterStatus], ['viewer', viewerStatus]]) {
                const learned = -status.clockOffsetMs;
                if (Math.abs(learned - skewMs) > 60_000) {
                    throw new Error(`${role}: clock offset learned ${status.clockOffsetMs} ms, not about -${skewMs} ms`);
                }
            }
        }
        log(`ok: ${name}: master and viewer connected, data channel both ways`);
    } catch (error) {
        failed(`${name}: ${error.message}`);
    } finally {
        if (config.screenshots) {
            for (const [role, page] of [['master', master], ['viewer', viewer]]) {
                if (page) await page.screenshot({ path: join(config.screenshots, `${name}-${role}.png`) }).catch(() => {});
            }
        }
        await context.close();
    }
}

try {
    await run('clock-right', 0);
    await run('clock-15-minutes-ahead', 15 * 60 * 1000);
} finally {
    await browser.close();
    pages.close();
    rmSync(home, { recursive: true, force: true });
}
if (failures === 0) {
    console.log('browser: PASSED');
    process.exit(0);
}
process.exit(1);
