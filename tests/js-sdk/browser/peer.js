// One WebRTC peer, master or viewer, as a web app builds it with the official SDKs: the AWS
// SDK for JavaScript (v2, its browser bundle) for the REST calls (DescribeSignalingChannel,
// CreateSignalingChannel, GetSignalingChannelEndpoint, GetIceServerConfig), with clock-skew
// correction on, and the KVS WebRTC SDK's SignalingClient for the WebSocket, given the clock
// offset the AWS SDK learned. The page is served from another origin than the server, so every
// REST call is a CORS request.
//
// Its settings come as JSON in the URL's fragment: role, endpoint, region, accessKeyId,
// secretAccessKey, channelName, clientId. It reports through window.kvsPeer: `state`, `log`,
// `done` (connected and a data-channel message received and sent) and `error`.

'use strict';

const settings = JSON.parse(decodeURIComponent(location.hash.slice(1)));
const isMaster = settings.role === 'MASTER';
const status = { state: 'starting', log: [], done: false, error: null, clockOffsetMs: 0 };
window.kvsPeer = status;

function log(...parts) {
    const line = parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' ');
    status.log.push(line);
    document.getElementById('log').textContent += `${line}\n`;
    console.log(`[${settings.role}] ${line}`);
}

function fail(error) {
    status.error = `${status.state}: ${error && error.code ? `${error.code}: ` : ''}${error && error.message ? error.message : error}`;
    log(`FAILED ${status.error}`);
}

const credentials = new AWS.Credentials(settings.accessKeyId, settings.secretAccessKey);
const kinesisVideo = new AWS.KinesisVideo({
    region: settings.region,
    endpoint: settings.endpoint,
    credentials,
    correctClockSkew: true,
    maxRetries: 4,
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function channelArn() {
    status.state = 'describing';
    for (let attempt = 0; ; attempt += 1) {
        try {
            const described = await kinesisVideo
                .describeSignalingChannel({ ChannelName: settings.channelName })
                .promise();
            return described.ChannelInfo.ChannelARN;
        } catch (error) {
            if (error.code !== 'ResourceNotFoundException') throw error;
            if (isMaster) {
                status.state = 'creating';
                const created = await kinesisVideo
                    .createSignalingChannel({ ChannelName: settings.channelName })
                    .promise();
                log('created the channel', created.ChannelARN);
                return created.ChannelARN;
            }
            // The viewer waits for the master to create it.
            if (attempt > 50) throw error;
            await sleep(100);
        }
    }
}

async function main() {
    document.getElementById('role').textContent = settings.role;
    const arn = await channelArn();
    log('channel', arn);

    status.state = 'getting endpoints';
    const endpoints = await kinesisVideo
        .getSignalingChannelEndpoint({
            ChannelARN: arn,
            SingleMasterChannelEndpointConfiguration: { Protocols: ['WSS', 'HTTPS'], Role: settings.role },
        })
        .promise();
    const endpoint = (protocol) =>
        endpoints.ResourceEndpointList.find((e) => e.Protocol === protocol).ResourceEndpoint;
    log('endpoints', endpoint('WSS'), endpoint('HTTPS'));

    status.state = 'getting ICE servers';
    const signalingChannels = new AWS.KinesisVideoSignalingChannels({
        region: settings.region,
        endpoint: endpoint('HTTPS'),
        credentials,
        correctClockSkew: true,
        maxRetries: 4,
    });
    const ice = await signalingChannels
        .getIceServerConfig({ ChannelARN: arn, ClientId: isMaster ? undefined : settings.clientId })
        .promise();
    const iceServers = ice.IceServerList.map((server) => ({
        urls: server.Uris,
        username: server.Username,
        credential: server.Password,
    }));
    log('ICE servers', iceServers.map((s) => s.urls).flat());
    // What the AWS SDK learned from the server's Date header, handed to the WebSocket signer
    // as the KVS samples do.
    status.clockOffsetMs = kinesisVideo.config.systemClockOffset;
    log('clock offset learned', status.clockOffsetMs);

    status.state = 'connecting the signaling client';
    const signaling = new KVSWebRTC.SignalingClient({
        channelARN: arn,
        channelEndpoint: endpoint('WSS'),
        role: isMaster ? KVSWebRTC.Role.MASTER : KVSWebRTC.Role.VIEWER,
        clientId: isMaster ? undefined : settings.clientId,
        region: settings.region,
        credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
        systemClockOffset: kinesisVideo.config.systemClockOffset,
    });
    signaling.on('error', (error) => fail(`signaling error: ${error && error.message ? error.message : error}`));
    signaling.on('close', () => log('signaling closed'));

    const received = { message: false, sent: false };
    const finishIfDone = (pc) => {
        if (pc.connectionState === 'connected' && received.message && received.sent && !status.done) {
            status.state = 'done';
            status.done = true;
            log('DONE: connected, data channel both ways');
        }
    };
    const newPeerConnection = (remoteClientId) => {
        const pc = new RTCPeerConnection({ iceServers });
        pc.onicecandidate = ({ candidate }) => {
            if (candidate) signaling.sendIceCandidate(candidate, remoteClientId);
        };
        pc.onconnectionstatechange = () => {
            log('connection state', pc.connectionState);
            finishIfDone(pc);
        };
        return pc;
    };
    const candidatesFor = new Map();

    if (isMaster) {
        const peers = new Map();
        signaling.on('sdpOffer', async (offer, remoteClientId) => {
            try {
                log('offer from', remoteClientId);
                const pc = newPeerConnection(remoteClientId);
                peers.set(remoteClientId, pc);
                pc.ondatachannel = ({ channel }) => {
                    channel.onmessage = ({ data }) => {
                        log('data channel got', data);
                        received.message = data === `ping from ${remoteClientId}`;
                        channel.send(`pong to ${remoteClientId}`);
                        received.sent = true;
                        finishIfDone(pc);
                    };
                };
                await pc.setRemoteDescription(offer);
                for (const candidate of candidatesFor.get(remoteClientId) || []) await pc.addIceCandidate(candidate);
                await pc.setLocalDescription(await pc.createAnswer());
                signaling.sendSdpAnswer(pc.localDescription, remoteClientId);
                log('answer sent to', remoteClientId);
            } catch (error) {
                fail(error);
            }
        });
        signaling.on('iceCandidate', async (candidate, remoteClientId) => {
            const pc = peers.get(remoteClientId);
            if (pc && pc.remoteDescription) await pc.addIceCandidate(candidate).catch(fail);
            else candidatesFor.set(remoteClientId, [...(candidatesFor.get(remoteClientId) || []), candidate]);
        });
        signaling.on('open', () => {
            status.state = 'signaling open';
            log('signaling open');
        });
    } else {
        const pc = newPeerConnection(undefined);
        const channel = pc.createDataChannel('kvsDataChannel');
        channel.onopen = () => {
            channel.send(`ping from ${settings.clientId}`);
            received.sent = true;
            log('data channel open, ping sent');
        };
        channel.onmessage = ({ data }) => {
            log('data channel got', data);
            received.message = data === `pong to ${settings.clientId}`;
            finishIfDone(pc);
        };
        const early = [];
        signaling.on('sdpAnswer', async (answer) => {
            try {
                log('answer from the master');
                await pc.setRemoteDescription(answer);
                for (const candidate of early) await pc.addIceCandidate(candidate);
            } catch (error) {
                fail(error);
            }
        });
        signaling.on('iceCandidate', async (candidate) => {
            if (pc.remoteDescription) await pc.addIceCandidate(candidate).catch(fail);
            else early.push(candidate);
        });
        signaling.on('open', async () => {
            try {
                status.state = 'signaling open';
                log('signaling open');
                await pc.setLocalDescription(await pc.createOffer());
                signaling.sendSdpOffer(pc.localDescription);
                log('offer sent');
            } catch (error) {
                fail(error);
            }
        });
    }
    signaling.open();
}

main().catch(fail);
