// The kvs-signaling live console: every channel with its master and viewers, the counters,
// the event stream, channel creation and deletion, and a test call with camera and data
// channel through the server. Plain JavaScript; every text from the server goes into the page
// as text, never as markup.
'use strict';

const $ = (id) => document.getElementById(id);
const MAX_EVENTS = 500;

// Calls that change something carry X-Kvs-Console: 1, which the server requires.
async function api(path, body) {
    const options = { credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
        options.method = 'POST';
        options.headers['content-type'] = 'application/json';
        options.headers['x-kvs-console'] = '1';
        options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (response.status === 401) {
        window.location.assign('/console/');
        throw new Error('signed out');
    }
    const text = await response.text();
    let json = null;
    try {
        json = text ? JSON.parse(text) : null;
    } catch {
        json = null;
    }
    if (!response.ok) {
        const message = json && (json.error || json.Message || json.message);
        throw new Error(message || `${response.status} ${text}`);
    }
    return json;
}

function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
        if (value === undefined || value === null) continue;
        if (name === 'class') node.className = value;
        else node.setAttribute(name, value);
    }
    for (const child of children) {
        if (child === undefined || child === null) continue;
        node.append(child instanceof Node ? child : String(child));
    }
    return node;
}

function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// --- state -------------------------------------------------------------------------------

let lastState = null;

function connection(c, now) {
    return element(
        'div',
        { class: `conn ${c.state}`, 'data-client': c.clientId || 'master', 'data-state': c.state },
        element('strong', {}, c.clientId || 'master'),
        c.state === 'current' ? null : element('em', {}, ` (${c.state})`),
        element('br'),
        element('small', {}, `${c.remote || 'unknown address'} · since ${ago(now - c.since)} · ` +
            `in ${c.messagesIn} · out ${c.messagesOut}`),
    );
}

function renderChannels(state) {
    const now = state.server.now;
    const body = $('channels').tBodies[0];
    const rows = state.channels.map((ch) => {
        const master = ch.connections.filter((c) => c.role === 'master');
        const viewers = ch.connections.filter((c) => c.role === 'viewer');
        const held = ch.held.map((h) => element('div', { class: 'held', 'data-recipient': h.recipient },
            `${h.messages} for ${h.recipient}, oldest ${ago(h.oldestAgeMs)}`));
        const name = element('a', { href: '#', 'data-describe': ch.arn }, ch.name);
        name.addEventListener('click', (event) => {
            event.preventDefault();
            describe(ch).catch((err) => showResult(String(err)));
        });
        const remove = element('button', { type: 'button', 'data-delete': ch.name }, 'Delete');
        remove.disabled = Boolean(ch.deleted);
        remove.addEventListener('click', () => {
            if (!window.confirm(`Delete channel ${ch.name}? Its connections are closed.`)) return;
            api('/console/api/delete', { ChannelARN: ch.arn })
                .then(() => refresh())
                .catch((err) => showResult(String(err)));
        });
        return element(
            'tr',
            { 'data-channel': ch.name },
            element('td', {}, name, element('br'), element('small', {}, ch.arn),
                ...(ch.node ? [element('br'), element('small', { class: 'node' }, `live on ${ch.node}`)] : [])),
            element('td', { class: 'ttl' }, ch.ttlSeconds ? `${ch.ttlSeconds} s` : ''),
            element('td', { class: 'master' }, ...master.map((c) => connection(c, now))),
            element('td', { class: 'viewers' }, ...viewers.map((c) => connection(c, now))),
            element('td', { class: 'held' }, ...held),
            element('td', {}, remove),
        );
    });
    if (rows.length === 0) {
        rows.push(element('tr', { class: 'empty' }, element('td', { colspan: 6 },
            'No channels yet: create one here, or with CreateSignalingChannel.')));
    }
    body.replaceChildren(...rows);
    // A deleted channel's configuration goes with it.
    const details = $('details');
    if (!details.hidden && !state.channels.some((ch) => ch.arn === details.dataset.arn && !ch.deleted)) {
        details.hidden = true;
    }

    // The test call's channel list follows the channels.
    const select = $('call-channel');
    const chosen = select.value;
    select.replaceChildren(...state.channels.filter((ch) => !ch.deleted)
        .map((ch) => element('option', { value: ch.arn }, ch.name)));
    if (chosen) select.value = chosen;
}

function renderCounters(state) {
    const c = state.counters;
    const items = [
        ['channels', state.channels.length],
        ['sockets open', `${state.server.socketsOpen} / ${state.server.socketsMax}`],
        ['connects', c.opened],
        ['refused', c.refused],
        ['delivered', c.delivered],
        ['held', c.buffered],
        ['expired', c.expired],
        ['throttled', c.throttled],
        ['invalid', c.invalid],
        ['bytes in', c.bytesIn],
        ['bytes out', c.bytesOut],
        ['REST errors', c.restErrors],
        ['auth failures', c.authFailures],
    ];
    $('counters').replaceChildren(...items.map(([label, value]) =>
        element('span', { class: 'counter', 'data-counter': label }, element('b', {}, value), ` ${label}`)));
    const cluster = state.cluster
        ? ` · cluster node ${state.cluster.node}` +
          (state.cluster.nodesMissing.length ? ` (no answer from ${state.cluster.nodesMissing.join(', ')})` : '')
        : '';
    $('server').textContent = `${state.server.publicUrl} · ${state.server.region} · v${state.server.version}` +
        ` · up ${ago(state.server.now - state.server.started)} · signed in as ${state.server.signedInAs}${cluster}`;
}

let refreshing = null;
let again = false;

async function refresh() {
    if (refreshing) {
        again = true;
        return refreshing;
    }
    refreshing = (async () => {
        do {
            again = false;
            const state = await api('/console/api/state');
            lastState = state;
            renderChannels(state);
            renderCounters(state);
        } while (again);
    })().finally(() => {
        refreshing = null;
    });
    return refreshing;
}

function showResult(text) {
    $('create-result').textContent = text;
}

async function describe(ch) {
    const described = await api('/console/api/describe', { ChannelARN: ch.arn });
    const tags = await api('/console/api/tags', { ResourceARN: ch.arn });
    $('details').dataset.arn = ch.arn;
    $('details-name').textContent = ch.name;
    $('details-body').textContent = JSON.stringify({ ...described, Tags: tags.Tags || {} }, null, 2);
    $('details').hidden = false;
}

// --- events ------------------------------------------------------------------------------

function describeEvent(e) {
    switch (e.type) {
        case 'connected': return `${e.who} connected to ${e.channel} from ${e.remote || 'unknown'}`;
        case 'superseded': return `${e.who} on ${e.channel} was replaced by a newer connection`;
        case 'closed': return `${e.who} left ${e.channel}: ${e.reason}`;
        case 'refused': return `${e.who} refused on ${e.channel}: ${e.error}: ${e.message}`;
        case 'message-refused': return `a message from ${e.who} on ${e.channel} refused: ${e.error}: ${e.message}`;
        case 'relayed': return `${e.messageType} relayed on ${e.channel}: ${e.from} → ${e.to}`;
        case 'held': return `${e.messageType} held on ${e.channel}: ${e.from} → ${e.to} (not connected)`;
        case 'expired': return `${e.count} held message(s) for ${e.to} on ${e.channel} expired`;
        case 'lagged': return e.text;
        default: return JSON.stringify(e);
    }
}

function addEvent(e) {
    const time = new Date(e.time || Date.now()).toLocaleTimeString();
    const item = element('li', { 'data-type': e.type, 'data-channel': e.channel, 'data-message-type': e.messageType },
        element('time', {}, time), ' ', describeEvent(e));
    // In cluster mode, the node whose hub did it.
    if (e.node) item.append(' ', element('small', { 'data-node': e.node }, `on ${e.node}`));
    const list = $('events');
    list.prepend(item);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

let refreshTimer = null;

function listen() {
    const stream = new EventSource('/console/api/events');
    stream.addEventListener('open', () => {
        $('stream-state').textContent = 'live';
        refresh().catch(() => {});
    });
    stream.addEventListener('error', () => {
        $('stream-state').textContent = 'reconnecting';
    });
    stream.addEventListener('message', (message) => {
        const e = JSON.parse(message.data);
        addEvent(e);
        // Connections come and go: show it at once (several events, one refresh).
        if (!refreshTimer) {
            refreshTimer = setTimeout(() => {
                refreshTimer = null;
                refresh().catch(() => {});
            }, 100);
        }
    });
    stream.addEventListener('lagged', (message) => {
        const e = JSON.parse(message.data);
        addEvent({ type: 'lagged', time: e.time, text: `${e.skipped} event(s) skipped` });
    });
}

// --- test call ---------------------------------------------------------------------------

const call = { socket: null, peers: new Map(), stream: null, channels: new Map() };

function setCallState(text) {
    $('call-state').textContent = text;
    $('call-state').dataset.state = text;
}

// A call's progress only moves forward: the browser may settle setRemoteDescription after the
// connection or even the data channel is already up (it does on loopback), and that late
// "answered" must not hide "data channel open".
const CALL_PROGRESS = ['answered', 'connected', 'data channel open'];

function callProgress(text) {
    return CALL_PROGRESS.findIndex((step) => text === step || text.startsWith(`${step} `));
}

function advanceCallState(text) {
    if (callProgress(text) > callProgress($('call-state').dataset.state || '')) setCallState(text);
}

function encode(object) {
    return btoa(JSON.stringify(object));
}

function decode(payload) {
    return JSON.parse(atob(payload));
}

function send(action, payload, recipient) {
    const message = { action, messagePayload: encode(payload) };
    if (recipient) message.recipientClientId = recipient;
    call.socket.send(JSON.stringify(message));
}

function chat(line) {
    const list = $('chat');
    list.append(element('li', {}, line));
    while (list.children.length > 100) list.firstElementChild.remove();
}

function wireChannel(channel, peerId) {
    call.channels.set(peerId, channel);
    channel.addEventListener('open', () => {
        advanceCallState('data channel open');
        chat(`data channel open with ${peerId}`);
    });
    channel.addEventListener('message', (event) => chat(`${peerId}: ${event.data}`));
}

// One peer connection per remote party: the master's one per viewer, a viewer's one.
function peer(peerId, iceServers) {
    let pc = call.peers.get(peerId);
    if (pc) return pc;
    pc = new RTCPeerConnection({ iceServers });
    call.peers.set(peerId, pc);
    const recipient = peerId === 'master' ? undefined : peerId;
    pc.addEventListener('icecandidate', ({ candidate }) => {
        if (candidate && call.socket) send('ICE_CANDIDATE', candidate.toJSON(), recipient);
    });
    pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') advanceCallState('connected');
        chat(`${peerId}: ${pc.connectionState}`);
    });
    pc.addEventListener('track', (event) => {
        const id = `remote-${peerId}`;
        let video = document.getElementById(id);
        if (!video) {
            video = element('video', { id, autoplay: '', playsinline: '' });
            $('remote-videos').append(video);
        }
        video.srcObject = event.streams[0];
    });
    pc.addEventListener('datachannel', (event) => wireChannel(event.channel, peerId));
    if (call.stream) for (const track of call.stream.getTracks()) pc.addTrack(track, call.stream);
    return pc;
}

async function onSignal(message, role, iceServers) {
    if (!message.messageType || !message.messagePayload) {
        if (message.messageType === 'STATUS_RESPONSE') chat(`error: ${JSON.stringify(message.statusResponse)}`);
        return;
    }
    const from = role === 'MASTER' ? message.senderClientId : 'master';
    const payload = decode(message.messagePayload);
    if (message.messageType === 'SDP_OFFER' && role === 'MASTER') {
        // A new offer from a viewer starts a new session with it.
        const old = call.peers.get(from);
        if (old) old.close();
        call.peers.delete(from);
        const pc = peer(from, iceServers);
        await pc.setRemoteDescription(payload);
        await pc.setLocalDescription(await pc.createAnswer());
        send('SDP_ANSWER', pc.localDescription.toJSON(), from);
        advanceCallState(`answered ${from}`);
    } else if (message.messageType === 'SDP_ANSWER' && role === 'VIEWER') {
        await peer('master', iceServers).setRemoteDescription(payload);
        advanceCallState('answered');
    } else if (message.messageType === 'ICE_CANDIDATE') {
        const pc = call.peers.get(from);
        if (pc) await pc.addIceCandidate(payload).catch((err) => chat(`candidate: ${err}`));
    }
}

async function startCall() {
    stopCall();
    const role = $('call-role').value;
    const arn = $('call-channel').value;
    let clientId = $('call-client-id').value.trim();
    if (role === 'VIEWER' && !clientId) {
        clientId = `console-${Math.random().toString(36).slice(2, 10)}`;
        $('call-client-id').value = clientId;
    }
    setCallState('getting a connect URL');
    const { url, iceServers } = await api('/console/api/test-call', {
        ChannelARN: arn, Role: role, ClientId: role === 'VIEWER' ? clientId : undefined,
    });
    if ($('call-media').checked && navigator.mediaDevices) {
        try {
            call.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
            $('local-video').srcObject = call.stream;
        } catch (err) {
            chat(`no camera or microphone (${err.name}): data channel only`);
        }
    }
    $('videos').hidden = false;
    setCallState('connecting');
    const socket = new WebSocket(url);
    call.socket = socket;
    $('call-stop').disabled = false;
    socket.addEventListener('open', async () => {
        setCallState(role === 'MASTER' ? 'waiting for viewers' : 'offering');
        if (role === 'VIEWER') {
            const pc = peer('master', iceServers);
            wireChannel(pc.createDataChannel('kvs-console'), 'master');
            if (!call.stream) {
                pc.addTransceiver('video', { direction: 'recvonly' });
                pc.addTransceiver('audio', { direction: 'recvonly' });
            }
            await pc.setLocalDescription(await pc.createOffer());
            send('SDP_OFFER', pc.localDescription.toJSON());
        }
    });
    socket.addEventListener('message', (event) => {
        let message;
        try {
            message = JSON.parse(event.data);
        } catch {
            return;
        }
        onSignal(message, role, iceServers).catch((err) => chat(`signaling: ${err}`));
    });
    socket.addEventListener('close', (event) => {
        if (call.socket === socket) setCallState(`signaling closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`);
    });
}

function stopCall() {
    if (call.socket) {
        const socket = call.socket;
        call.socket = null;
        socket.close();
    }
    for (const pc of call.peers.values()) pc.close();
    call.peers.clear();
    call.channels.clear();
    if (call.stream) for (const track of call.stream.getTracks()) track.stop();
    call.stream = null;
    $('local-video').srcObject = null;
    $('remote-videos').replaceChildren();
    $('videos').hidden = true;
    $('call-stop').disabled = true;
    setCallState('idle');
}

// --- wiring ------------------------------------------------------------------------------

$('create-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('create-name').value.trim();
    const ttl = Number($('create-ttl').value) || 60;
    api('/console/api/create', { ChannelName: name, SingleMasterConfiguration: { MessageTtlSeconds: ttl } })
        .then((created) => {
            showResult(`created ${created.ChannelARN}`);
            $('create-name').value = '';
            return refresh();
        })
        .catch((err) => showResult(String(err)));
});

$('call-form').addEventListener('submit', (event) => {
    event.preventDefault();
    startCall().catch((err) => setCallState(`failed: ${err.message || err}`));
});
$('call-stop').addEventListener('click', stopCall);
$('chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('chat-text').value;
    if (!text) return;
    let sent = 0;
    for (const channel of call.channels.values()) {
        if (channel.readyState === 'open') {
            channel.send(text);
            sent += 1;
        }
    }
    chat(sent ? `me: ${text}` : 'no open data channel');
    $('chat-text').value = '';
});

refresh().catch((err) => showResult(String(err)));
setInterval(() => refresh().catch(() => {}), 2000);
listen();
window.kvsConsole = { refresh, state: () => lastState, call };
