/* The peer for bench-docs: chainpad-server (npm, CryptPad's Netflux router) on `ws`, with the
 * least a history keeper must do for channel messages to be relayed and acknowledged: append
 * each message to its channel's log file (no fsync, as CryptPad's storage does) and call back.
 *   node docs_peer.cjs PORT LOG_DIR
 */
'use strict';
const path = require('path');
const fs = require('fs');
const clients = path.join(__dirname, '..', 'tests', 'clients', 'node_modules');
const WebSocketServer = require(path.join(clients, 'ws')).Server;
const ChainpadServer = require(path.join(clients, 'chainpad-server'));

const [port, logDir] = process.argv.slice(2);
const wss = new WebSocketServer({ port: +port, host: '127.0.0.1', path: '/cryptpad_websocket' });
const Server = ChainpadServer.create(wss);
const streams = new Map();
Server.on('channelMessage', (S, channel, msgStruct, cb) => {
    msgStruct.push(Date.now());
    let stream = streams.get(channel.id);
    if (!stream) { stream = fs.createWriteStream(path.join(logDir, channel.id + '.ndjson'), { flags: 'a' }); streams.set(channel.id, stream); }
    stream.write(JSON.stringify(msgStruct) + '\n', (err) => cb(err ? 'EIO' : undefined));
});
Server.on('error', () => {});
console.log('listening');
