/* Load for bench-docs: N raw Netflux clients in C channels; each sends an edit-sized message,
 * waits for its ACK (one in flight, as ChainPad does), and sends the next, for D seconds.
 * Receivers time each message from its send. Prints JSON: sent/s, delivered/s, p50/p99 ms.
 *   node docs_load.cjs WS_URL CLIENTS CHANNELS SECONDS
 */
'use strict';
const path = require('path');
const WebSocket = require(path.join(__dirname, '..', 'tests', 'clients', 'node_modules', 'ws'));

const [url, clientCount, channelCount, seconds] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const channels = Array.from({ length: channelCount }, (_, i) => i.toString(16).padStart(2, '0').repeat(16));
const latencies = [];
let sent = 0, delivered = 0, errors = 0, running = false;
const pad = 'x'.repeat(300);  // about the size of an encrypted ChainPad patch

const client = (index) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const channel = channels[index % channelCount];
    let seq = 0, me = null, pending = 0;
    const sendNext = () => {
        if (!running) { return; }
        pending = ++seq;
        ws.send(JSON.stringify([pending, 'MSG', channel, JSON.stringify({ t: Date.now(), pad })]));
        sent++;
    };
    ws.on('message', (data) => {
        const m = JSON.parse(String(data));
        if (m[2] === 'IDENT') { me = m[3]; return ws.send(JSON.stringify([++seq, 'JOIN', channel])); }
        if (m[0] === 0 && m[2] === 'JOIN' && m[1] === me) { return resolve({ ws, start: sendNext }); }
        if (m[0] === 0 && m[2] === 'MSG' && m[3] === channel) {
            if (running) { delivered++; latencies.push(Date.now() - JSON.parse(m[4]).t); }
            return;
        }
        if (m[0] === pending && m[0] !== 0) {
            if (m[1] !== 'ACK') { errors++; }
            sendNext();
        }
    });
    ws.on('error', reject);
});

(async () => {
    const all = [];
    for (let i = 0; i < clientCount; i++) { all.push(await client(i)); }
    running = true;
    const started = Date.now();
    all.forEach((c) => c.start());
    await new Promise((r) => setTimeout(r, seconds * 1000));
    running = false;
    const elapsed = (Date.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const q = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : null;
    console.log(JSON.stringify({ sent_per_s: sent / elapsed, delivered_per_s: delivered / elapsed, p50_ms: q(0.5), p99_ms: q(0.99), errors }));
    all.forEach((c) => c.ws.close());
    setTimeout(() => process.exit(0), 200);
})().catch((e) => { console.error(e); process.exit(2); });
