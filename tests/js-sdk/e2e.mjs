// End-to-end check of kvs-signaling against the official KVS WebRTC JavaScript SDK
// (npm `amazon-kinesis-video-streams-webrtc`), run in Node.
//
// A master and two viewers open the SDK's own SignalingClient against the server; the SDK
// presigns every connect URL itself with its own SigV4 signer, so the server must run with
// authentication on. Each viewer sends an SDP offer and an ICE candidate; the master answers
// each viewer by the client id the server reported as the offer's sender and sends each a
// candidate. Checked: senders, recipients, payloads (byte for byte), that nothing arrives twice
// or at the wrong client, that no STATUS_RESPONSE (a failure report) arrives, and that a viewer
// presigning with a wrong secret is refused.
//
// Inputs, from the command line or else the environment:
//   --wss-endpoint     KVS_WSS_ENDPOINT        the WSS endpoint (GetSignalingChannelEndpoint)
//   --https-endpoint   KVS_HTTPS_ENDPOINT      the HTTPS endpoint (optional; checked to name the
//                                              same host as the WSS one)
//   --region           KVS_REGION              (us-west-2)
//   --access-key-id    AWS_ACCESS_KEY_ID
//   --secret-access-key AWS_SECRET_ACCESS_KEY
//   --channel-arn      KVS_CHANNEL_ARN
//   --timeout-ms       KVS_E2E_TIMEOUT_MS      (20000) the whole run; exits 1 when it elapses
//
// A private CA (the server's development CA) is trusted through NODE_EXTRA_CA_CERTS: the SDK
// passes no TLS options to its socket.
//
// Exit status: 0 when every check passed, 1 on a failed check or a timeout, 2 on bad usage.

import { inspect, isDeepStrictEqual, parseArgs } from 'node:util';
import { WebSocket as NodeWebSocket } from 'ws';
import KVSWebRTC from 'amazon-kinesis-video-streams-webrtc';

const { SignalingClient, Role } = KVSWebRTC;

// Node 20 has no global WebSocket, and the SDK's fallback (`WebSocket || require('ws')`) throws
// a ReferenceError before it gets to `require`. Give it the `ws` package's, on every Node version
// (newer ones have a global WebSocket of their own), so that runs behave the same everywhere.
globalThis.WebSocket = NodeWebSocket;

const started = Date.now();
const log = (...parts) => console.log(`[e2e +${String(Date.now() - started).padStart(5)} ms]`, ...parts);

function usage(message) {
    console.error(`e2e: ${message}`);
    console.error(
        'usage: node e2e.mjs --wss-endpoint wss://HOST:PORT [--https-endpoint https://HOST:PORT] ' +
            '--region REGION --access-key-id ID --secret-access-key KEY --channel-arn ARN ' +
            '[--timeout-ms MS]\n(each also from KVS_WSS_ENDPOINT, KVS_HTTPS_ENDPOINT, KVS_REGION, ' +
            'AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, KVS_CHANNEL_ARN, KVS_E2E_TIMEOUT_MS)',
    );
    process.exit(2);
}

let args;
try {
    args = parseArgs({
        options: {
            'wss-endpoint': { type: 'string' },
            'https-endpoint': { type: 'string' },
            region: { type: 'string' },
            'access-key-id': { type: 'string' },
            'secret-access-key': { type: 'string' },
            'channel-arn': { type: 'string' },
            'timeout-ms': { type: 'string' },
        },
        strict: true,
        allowPositionals: false,
    }).values;
} catch (err) {
    usage(err.message);
}
const env = (name) => (process.env[name] ? process.env[name] : undefined);
const config = {
    wssEndpoint: args['wss-endpoint'] ?? env('KVS_WSS_ENDPOINT'),
    httpsEndpoint: args['https-endpoint'] ?? env('KVS_HTTPS_ENDPOINT'),
    region: args.region ?? env('KVS_REGION') ?? 'us-west-2',
    accessKeyId: args['access-key-id'] ?? env('AWS_ACCESS_KEY_ID'),
    secretAccessKey: args['secret-access-key'] ?? env('AWS_SECRET_ACCESS_KEY'),
    channelARN: args['channel-arn'] ?? env('KVS_CHANNEL_ARN'),
    timeoutMs: Number(args['timeout-ms'] ?? env('KVS_E2E_TIMEOUT_MS') ?? 20000),
};
for (const [key, flag] of [
    ['wssEndpoint', '--wss-endpoint'],
    ['accessKeyId', '--access-key-id'],
    ['secretAccessKey', '--secret-access-key'],
    ['channelARN', '--channel-arn'],
]) {
    if (!config[key]) usage(`${flag} is missing`);
}
if (!Number.isFinite(config.timeoutMs) || config.timeoutMs <= 0) usage('--timeout-ms must be a positive number');

const clients = [];
let phase = 'starting';

function closeAll() {
    for (const client of clients) {
        try {
            client.close();
        } catch {
            // Closing is best effort on the way out.
        }
    }
}

function fail(message) {
    console.error(`e2e: FAILED: ${message}`);
    closeAll();
    process.exit(1);
}

const timer = setTimeout(
    () => fail(`timed out after ${config.timeoutMs} ms, ${phase}; ${pending()}`),
    config.timeoutMs,
);

function check(condition, message) {
    if (!condition) fail(message);
}

function checkEqual(actual, expected, what) {
    if (!isDeepStrictEqual(actual, expected)) {
        fail(`${what}:\n  expected ${inspect(expected, { depth: 5 })}\n  got      ${inspect(actual, { depth: 5 })}`);
    }
}

const checked = [];
function passed(what) {
    checked.push(what);
    log(`ok: ${what}`);
}

// ---- The payloads. Signaling treats them as opaque; these are what a browser would send. ----

function offerSdp(sessionId, ufrag) {
    return [
        'v=0',
        `o=- ${sessionId} 2 IN IP4 127.0.0.1`,
        's=-',
        't=0 0',
        'a=group:BUNDLE 0 1',
        'a=extmap-allow-mixed',
        'a=msid-semantic: WMS',
        'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126',
        'c=IN IP4 0.0.0.0',
        'a=rtcp:9 IN IP4 0.0.0.0',
        `a=ice-ufrag:${ufrag}`,
        'a=ice-pwd:7UyT0SJ9bDpfqJNd2h2rGkTQ',
        'a=ice-options:trickle',
        'a=fingerprint:sha-256 5E:2C:8B:7F:A1:0D:9C:33:6B:E0:41:57:F2:88:1A:C9:04:DE:77:39:B5:60:12:AF:83:4E:C1:9A:26:D7:F0:6B',
        'a=setup:actpass',
        'a=mid:0',
        'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
        'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
        'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
        'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
        'a=recvonly',
        'a=rtcp-mux',
        'a=rtpmap:111 opus/48000/2',
        'a=rtcp-fb:111 transport-cc',
        'a=fmtp:111 minptime=10;useinbandfec=1',
        'a=rtpmap:63 red/48000/2',
        'a=fmtp:63 111/111',
        'a=rtpmap:9 G722/8000',
        'a=rtpmap:0 PCMU/8000',
        'a=rtpmap:8 PCMA/8000',
        'a=rtpmap:13 CN/8000',
        'a=rtpmap:110 telephone-event/48000',
        'a=rtpmap:126 telephone-event/8000',
        'm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 45 46',
        'c=IN IP4 0.0.0.0',
        'a=rtcp:9 IN IP4 0.0.0.0',
        `a=ice-ufrag:${ufrag}`,
        'a=ice-pwd:7UyT0SJ9bDpfqJNd2h2rGkTQ',
        'a=ice-options:trickle',
        'a=fingerprint:sha-256 5E:2C:8B:7F:A1:0D:9C:33:6B:E0:41:57:F2:88:1A:C9:04:DE:77:39:B5:60:12:AF:83:4E:C1:9A:26:D7:F0:6B',
        'a=setup:actpass',
        'a=mid:1',
        'a=extmap:14 urn:ietf:params:rtp-hdrext:toffset',
        'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
        'a=extmap:13 urn:3gpp:video-orientation',
        'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
        'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
        'a=recvonly',
        'a=rtcp-mux',
        'a=rtcp-rsize',
        'a=rtpmap:96 VP8/90000',
        'a=rtcp-fb:96 goog-remb',
        'a=rtcp-fb:96 transport-cc',
        'a=rtcp-fb:96 ccm fir',
        'a=rtcp-fb:96 nack',
        'a=rtcp-fb:96 nack pli',
        'a=rtpmap:97 rtx/90000',
        'a=fmtp:97 apt=96',
        'a=rtpmap:102 H264/90000',
        'a=rtcp-fb:102 goog-remb',
        'a=rtcp-fb:102 transport-cc',
        'a=rtcp-fb:102 ccm fir',
        'a=rtcp-fb:102 nack',
        'a=rtcp-fb:102 nack pli',
        'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
        'a=rtpmap:103 rtx/90000',
        'a=fmtp:103 apt=102',
        'a=rtpmap:45 AV1/90000',
        'a=rtcp-fb:45 goog-remb',
        'a=rtcp-fb:45 transport-cc',
        'a=rtcp-fb:45 ccm fir',
        'a=rtcp-fb:45 nack',
        'a=rtcp-fb:45 nack pli',
        'a=fmtp:45 level-idx=5;profile=0;tier=0',
        'a=rtpmap:46 rtx/90000',
        'a=fmtp:46 apt=45',
        '',
    ].join('\r\n');
}

function answerSdp(sessionId, ufrag) {
    return [
        'v=0',
        `o=- ${sessionId} 2 IN IP4 127.0.0.1`,
        's=-',
        't=0 0',
        'a=group:BUNDLE 0 1',
        'a=msid-semantic: WMS myKvsVideoStream',
        'm=audio 9 UDP/TLS/RTP/SAVPF 111',
        'c=IN IP4 0.0.0.0',
        'a=rtcp:9 IN IP4 0.0.0.0',
        `a=ice-ufrag:${ufrag}`,
        'a=ice-pwd:Hq4NQ0r6zZ1bN5o8fR2kVw3y',
        'a=ice-options:trickle',
        'a=fingerprint:sha-256 A0:71:3B:9E:52:C4:18:6D:F9:2A:E3:40:87:CB:15:6F:D2:09:B8:74:3E:A1:5C:60:F7:2D:98:4B:E5:13:CA:86',
        'a=setup:active',
        'a=mid:0',
        'a=sendonly',
        'a=msid:myKvsVideoStream myAudioTrack',
        'a=rtcp-mux',
        'a=rtpmap:111 opus/48000/2',
        'a=fmtp:111 minptime=10;useinbandfec=1',
        'a=ssrc:1834930611 cname:AZdzv9S1zQ3LqhqR',
        'm=video 9 UDP/TLS/RTP/SAVPF 102',
        'c=IN IP4 0.0.0.0',
        'a=rtcp:9 IN IP4 0.0.0.0',
        `a=ice-ufrag:${ufrag}`,
        'a=ice-pwd:Hq4NQ0r6zZ1bN5o8fR2kVw3y',
        'a=ice-options:trickle',
        'a=fingerprint:sha-256 A0:71:3B:9E:52:C4:18:6D:F9:2A:E3:40:87:CB:15:6F:D2:09:B8:74:3E:A1:5C:60:F7:2D:98:4B:E5:13:CA:86',
        'a=setup:active',
        'a=mid:1',
        'a=sendonly',
        'a=msid:myKvsVideoStream myVideoTrack',
        'a=rtcp-mux',
        'a=rtcp-rsize',
        'a=rtpmap:102 H264/90000',
        'a=rtcp-fb:102 nack',
        'a=rtcp-fb:102 nack pli',
        'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
        'a=ssrc:2897354132 cname:AZdzv9S1zQ3LqhqR',
        '',
    ].join('\r\n');
}

// RTCSessionDescription.toJSON() and RTCIceCandidate.toJSON() shapes, in their key order.
const description = (type, sdp) => ({ sdp, type });
const candidate = (text, ufrag) => ({ candidate: text, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: ufrag });

const random = () => Math.random().toString(36).substring(2, 10).toUpperCase();
const viewers = ['A', 'B'].map((name, index) => {
    const ufrag = `vw${name}${index}x`;
    return {
        name: `viewer ${name}`,
        clientId: `e2e-viewer-${name}-${random()}`,
        offer: description('offer', offerSdp(`46117${index}3190524731${index}`, ufrag)),
        candidate: candidate(
            `candidate:84216304${index} 1 udp 2122260223 192.0.2.${10 + index} 5432${index} typ host generation 0 ufrag ${ufrag} network-id 1`,
            ufrag,
        ),
        // Filled in as events arrive.
        answers: [],
        candidates: [],
        opened: false,
    };
});
const answerFor = (viewer, index) => description('answer', answerSdp(`31902${index}54731446`, `ms${index}q`));
const masterCandidateFor = (viewer, index) =>
    candidate(
        `candidate:1${index}7872943 1 udp 1686052607 198.51.100.${20 + index} 6100${index} typ srflx raddr 10.0.0.${5 + index} rport 6100${index} generation 0 ufrag ms${index}q network-id 1`,
        `ms${index}q`,
    );

const master = { offers: [], candidates: [], opened: false };
const statusResponses = [];

function pending() {
    const missing = [];
    if (!master.opened) missing.push('master not open');
    for (const viewer of viewers) {
        if (!viewer.opened) missing.push(`${viewer.name} not open`);
        if (!master.offers.some((o) => o.sender === viewer.clientId)) missing.push(`no offer from ${viewer.name} at the master`);
        if (!master.candidates.some((c) => c.sender === viewer.clientId)) missing.push(`no candidate from ${viewer.name} at the master`);
        if (viewer.answers.length === 0) missing.push(`no answer at ${viewer.name}`);
        if (viewer.candidates.length === 0) missing.push(`no candidate at ${viewer.name}`);
    }
    return missing.length ? `still waiting for: ${missing.join(', ')}` : 'nothing missing';
}

// ---- The clients. ----

const credentials = { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey };

function signalingClient(role, clientId, creds = credentials) {
    const client = new SignalingClient({
        channelARN: config.channelARN,
        channelEndpoint: config.wssEndpoint,
        role,
        clientId,
        region: config.region,
        credentials: creds,
        systemClockOffset: 0,
    });
    clients.push(client);
    return client;
}

function describeError(event) {
    if (event instanceof Error) return event.message;
    return event?.message || event?.error?.message || inspect(event, { depth: 1 });
}

function opened(client, what) {
    return new Promise((resolve) => {
        client.on('open', () => {
            log(`${what}: open`);
            resolve();
        });
        client.on('error', (event) => fail(`${what}: error: ${describeError(event)}`));
        client.on('close', () => {
            if (!finished) fail(`${what}: the server closed the connection; ${pending()}`);
        });
        client.on('statusResponse', (status) => {
            statusResponses.push({ to: what, status });
            fail(`${what}: STATUS_RESPONSE (a failure report): ${JSON.stringify(status)}`);
        });
        client.open();
    });
}

let finished = false;

log(`endpoint ${config.wssEndpoint}, region ${config.region}, channel ${config.channelARN}`);
if (config.httpsEndpoint) {
    const wssHost = new URL(config.wssEndpoint).host;
    const httpsUrl = new URL(config.httpsEndpoint);
    check(httpsUrl.protocol === 'https:', `the HTTPS endpoint ${config.httpsEndpoint} is not https://`);
    check(httpsUrl.host === wssHost, `the HTTPS endpoint's host ${httpsUrl.host} is not the WSS endpoint's ${wssHost}`);
    passed(`the HTTPS endpoint ${config.httpsEndpoint} names the WSS endpoint's host`);
}

// 1. A viewer presigning with a wrong secret is refused before the upgrade: authentication is on,
//    so the accepted connects below really verified the SDK's own signatures.
phase = 'connecting a viewer with a wrong secret';
await new Promise((resolve) => {
    const client = signalingClient(Role.VIEWER, `e2e-intruder-${random()}`, {
        accessKeyId: config.accessKeyId,
        secretAccessKey: `${config.secretAccessKey}-wrong`,
    });
    let error;
    client.on('open', () => fail('a viewer presigning with a wrong secret was let in: is authentication off?'));
    client.on('error', (event) => {
        error = describeError(event);
    });
    client.on('close', () => {
        check(error !== undefined, 'the wrongly signed connect closed without an error');
        check(/\b403\b/.test(error), `the wrongly signed connect failed, but not with 403: ${error}`);
        passed(`a viewer presigned with a wrong secret is refused (${error})`);
        resolve();
    });
    client.open();
});

// 2. The master connects first and answers every offer by the sender id the server reported.
const masterClient = signalingClient(Role.MASTER, undefined);
masterClient.on('sdpOffer', (offer, senderClientId) => {
    log(`master: SDP_OFFER from ${senderClientId}`);
    master.offers.push({ offer, sender: senderClientId });
    const index = viewers.findIndex((v) => v.clientId === senderClientId);
    check(index >= 0, `the master got an SDP offer from ${inspect(senderClientId)}, which is no viewer's client id`);
    const viewer = viewers[index];
    checkEqual(offer, viewer.offer, `the SDP offer the master got from ${viewer.name}`);
    passed(`master got ${viewer.name}'s SDP offer, sender ${senderClientId}, payload intact`);
    masterClient.sendSdpAnswer(answerFor(viewer, index), senderClientId, `answer-${index}`);
    masterClient.sendIceCandidate(masterCandidateFor(viewer, index), senderClientId, `cand-${index}`);
    log(`master: sent SDP_ANSWER and ICE_CANDIDATE to ${senderClientId}`);
    maybeDone();
});
masterClient.on('iceCandidate', (received, senderClientId) => {
    log(`master: ICE_CANDIDATE from ${senderClientId}`);
    master.candidates.push({ candidate: received, sender: senderClientId });
    const viewer = viewers.find((v) => v.clientId === senderClientId);
    check(viewer !== undefined, `the master got an ICE candidate from ${inspect(senderClientId)}, which is no viewer's client id`);
    checkEqual(received, viewer.candidate, `the ICE candidate the master got from ${viewer.name}`);
    passed(`master got ${viewer.name}'s ICE candidate, sender ${senderClientId}, payload intact`);
    maybeDone();
});
masterClient.on('sdpAnswer', (_answer, sender) => fail(`the master got an SDP answer (from ${inspect(sender)})`));
phase = 'connecting the master';
await opened(masterClient, 'master');
master.opened = true;
passed('master connected with the SDK-presigned URL (no client id)');

// 3. The viewers connect, then each sends its offer and a candidate (no recipient: the master).
for (const [index, viewer] of viewers.entries()) {
    const client = signalingClient(Role.VIEWER, viewer.clientId);
    viewer.client = client;
    client.on('sdpAnswer', (answer, senderClientId) => {
        log(`${viewer.name}: SDP_ANSWER from ${senderClientId ?? '(no senderClientId: the master)'}`);
        viewer.answers.push({ answer, sender: senderClientId });
        check(viewer.answers.length === 1, `${viewer.name} got ${viewer.answers.length} SDP answers`);
        check(senderClientId === undefined, `${viewer.name}'s SDP answer came with senderClientId ${inspect(senderClientId)}; the master's messages carry none`);
        checkEqual(answer, answerFor(viewer, index), `the SDP answer ${viewer.name} got (another viewer's, or damaged?)`);
        passed(`${viewer.name} got its own SDP answer from the master, payload intact`);
        maybeDone();
    });
    client.on('iceCandidate', (received, senderClientId) => {
        log(`${viewer.name}: ICE_CANDIDATE from ${senderClientId ?? '(no senderClientId: the master)'}`);
        viewer.candidates.push({ candidate: received, sender: senderClientId });
        check(viewer.candidates.length === 1, `${viewer.name} got ${viewer.candidates.length} ICE candidates`);
        check(senderClientId === undefined, `${viewer.name}'s ICE candidate came with senderClientId ${inspect(senderClientId)}; the master's messages carry none`);
        checkEqual(received, masterCandidateFor(viewer, index), `the ICE candidate ${viewer.name} got (another viewer's, or damaged?)`);
        passed(`${viewer.name} got its own ICE candidate from the master, payload intact`);
        maybeDone();
    });
    client.on('sdpOffer', (_offer, sender) => fail(`${viewer.name} got an SDP offer (from ${inspect(sender)})`));
    phase = `connecting ${viewer.name}`;
    await opened(client, viewer.name);
    viewer.opened = true;
    passed(`${viewer.name} connected with the SDK-presigned URL, client id ${viewer.clientId}`);
}
phase = 'exchanging offers, answers and candidates';
for (const [index, viewer] of viewers.entries()) {
    viewer.client.sendSdpOffer(viewer.offer, undefined, `offer-${index}`);
    viewer.client.sendIceCandidate(viewer.candidate, undefined, `cand-${index}`);
    log(`${viewer.name}: sent SDP_OFFER (${JSON.stringify(viewer.offer).length} bytes of JSON) and ICE_CANDIDATE`);
}

// 4. Done once everything arrived; then a short wait for anything extra (duplicates, strays).
let settling = false;
function maybeDone() {
    const complete =
        viewers.every((v) => v.answers.length === 1 && v.candidates.length === 1) &&
        master.offers.length === viewers.length &&
        master.candidates.length === viewers.length;
    if (!complete || settling) return;
    settling = true;
    setTimeout(() => {
        checkEqual(master.offers.length, viewers.length, 'the number of SDP offers at the master');
        checkEqual(master.candidates.length, viewers.length, 'the number of ICE candidates at the master');
        checkEqual(statusResponses, [], 'STATUS_RESPONSE messages');
        passed('nothing arrived twice or at the wrong client; no STATUS_RESPONSE');
        finished = true;
        closeAll();
        clearTimeout(timer);
        console.log(`e2e: PASSED ${checked.length} checks in ${Date.now() - started} ms`);
        process.exit(0);
    }, 300);
}
