// JMAP over WebSocket (RFC 8887) with the ws package: the handshake's rules (credentials,
// the "jmap" subprotocol), a Request and its Response, RequestErrors, then push: prints
// "ready" once WebSocketPushEnable is sent, and exits after the first StateChange.
// Usage: node jmap_ws.mjs SESSION_URL USER PASSWORD
import WebSocket from "ws";

const [sessionUrl, user, password] = process.argv.slice(2);
const headers = { Authorization: "Basic " + Buffer.from(`${user}:${password}`).toString("base64") };
const session = await (await fetch(sessionUrl, { headers })).json();
const cap = session.capabilities["urn:ietf:params:jmap:websocket"];
const accountId = session.primaryAccounts["urn:ietf:params:jmap:mail"];

// The handshake refused: no credentials (401), no subprotocol (400).
function refusal(options, protocols) {
  return new Promise((resolve) => {
    const ws = new WebSocket(cap.url, protocols, options);
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
    ws.on("open", () => { ws.close(); resolve(101); });
    ws.on("error", () => resolve(-1));
  });
}
const noCredentials = await refusal({}, ["jmap"]);
const noSubprotocol = await refusal({ headers }, []);

const ws = new WebSocket(cap.url, ["jmap"], { headers });
const received = [];
let waiting = null;
ws.on("message", (data) => {
  received.push(JSON.parse(data.toString()));
  if (waiting) waiting();
});
await new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject); });
function next(match) {
  return new Promise((resolve) => {
    const look = () => {
      const i = received.findIndex(match);
      if (i >= 0) { waiting = null; resolve(received.splice(i, 1)[0]); } else waiting = look;
    };
    look();
  });
}
ws.send(JSON.stringify({
  "@type": "Request", id: "r1", using: ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
  methodCalls: [["Mailbox/get", { accountId, properties: ["name", "role"] }, "0"], ["Core/echo", { hello: true }, "1"]],
}));
const response = await next((m) => m.requestId === "r1");
ws.send("{not json");
const notJson = await next((m) => m["@type"] === "RequestError" && m.type.endsWith("notJSON"));
ws.send(JSON.stringify({ "@type": "Request", id: "r2", using: ["urn:example:nothing"], methodCalls: [] }));
const unknownCapability = await next((m) => m.requestId === "r2");
ws.send(JSON.stringify({ "@type": "Surprise", id: "r3" }));
const unknownType = await next((m) => m.requestId === "r3");
ws.send(JSON.stringify({ "@type": "WebSocketPushEnable", dataTypes: ["Email", "Mailbox"] }));
console.log("ready");
const change = await next((m) => m["@type"] === "StateChange");
console.log(JSON.stringify({
  noCredentials, noSubprotocol, protocol: ws.protocol, url: cap.url, supportsPush: cap.supportsPush,
  response, notJson, unknownCapability, unknownType, change,
}));
ws.close();
