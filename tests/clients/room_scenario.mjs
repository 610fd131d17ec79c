// matrix-js-sdk against coop-room: two members log in, create a Space and a room in it,
// invite and join, exchange messages, paginate, upload and download media, see typing and
// receipts. Exits non-zero with a reason on the first failure.
import * as sdk from "matrix-js-sdk";

const [baseUrl, domain, password] = process.argv.slice(2);
const log = (...a) => console.log(...a);
const fail = (why) => { console.error("FAIL:", why); process.exit(1); };
const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));
const within = (promise, what, ms = 15000) => Promise.race([promise, timeout(ms, what)]);

async function login(user) {
  const anonymous = sdk.createClient({ baseUrl });
  const r = await anonymous.login("m.login.password", { identifier: { type: "m.id.user", user }, password });
  const client = sdk.createClient({ baseUrl, accessToken: r.access_token, userId: r.user_id, deviceId: r.device_id });
  const ready = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => { if (state === "PREPARED") resolve(); }));
  await client.startClient({ initialSyncLimit: 20 });
  await within(ready, `${user}'s first sync`);
  return client;
}

function waitFor(client, event, predicate, what) {
  return within(new Promise((resolve) => {
    const handler = (...args) => { if (predicate(...args)) { client.off(event, handler); resolve(args); } };
    client.on(event, handler);
  }), what);
}

try {
  const alice = await login("alice");
  const bob = await login("bob");
  const bobId = `@bob:${domain}`;

  const space = await alice.createRoom({ name: "Garden", creation_content: { type: "m.space" }, invite: [bobId] });
  const room = await alice.createRoom({ name: "Seeds", topic: "What to plant", invite: [bobId] });
  await alice.sendStateEvent(space.room_id, "m.space.child", { via: [domain] }, room.room_id);
  await alice.sendStateEvent(room.room_id, "m.space.parent", { via: [domain], canonical: true }, space.room_id);
  log("created space", space.room_id, "and room", room.room_id);

  await within(new Promise((resolve) => {
    const check = () => bob.getRoom(room.room_id)?.getMyMembership() === "invite";
    if (check()) return resolve();
    bob.on(sdk.RoomMemberEvent.Membership, () => { if (check()) resolve(); });
  }), "bob's invite");
  await bob.joinRoom(space.room_id);
  await bob.joinRoom(room.room_id);
  log("bob joined");

  const hierarchy = await alice.getRoomHierarchy(space.room_id);
  if (!hierarchy.rooms.some((r) => r.room_id === room.room_id)) fail("the Space's hierarchy lacks the room");

  const got = waitFor(bob, sdk.RoomEvent.Timeline, (event) => event.getContent()?.body === "hello from js-sdk", "bob receives the message");
  for (let i = 0; i < 30; i++) await alice.sendTextMessage(room.room_id, `old ${i}`);
  await alice.sendTextMessage(room.room_id, "hello from js-sdk");
  await got;
  log("message delivered through sync");

  const typing = waitFor(bob, sdk.RoomMemberEvent.Typing, (event, member) => member.userId === alice.getUserId() && member.typing, "typing");
  await alice.sendTyping(room.room_id, true, 10000);
  await typing;
  log("typing seen");

  const bobRoom = bob.getRoom(room.room_id);
  const last = bobRoom.getLiveTimeline().getEvents().at(-1);
  const receipt = waitFor(alice, sdk.RoomEvent.Receipt, () => true, "receipt");
  await bob.sendReadReceipt(last);
  await receipt;
  log("receipt seen");

  const before = bobRoom.getLiveTimeline().getEvents().length;
  while (bobRoom.getLiveTimeline().getPaginationToken(sdk.EventTimeline.BACKWARDS)) {
    await bob.scrollback(bobRoom, 10);
    if (bobRoom.getLiveTimeline().getEvents().some((e) => e.getContent()?.body === "old 0")) break;
  }
  if (!bobRoom.getLiveTimeline().getEvents().some((e) => e.getContent()?.body === "old 0")) fail("scrollback never reached the first message");
  log("scrollback from", before, "to", bobRoom.getLiveTimeline().getEvents().length, "events");

  const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
  const upload = await bob.uploadContent(bytes, { type: "application/octet-stream", name: "seeds.bin" });
  const url = bob.mxcUrlToHttp(upload.content_uri, undefined, undefined, undefined, false, true, true);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${bob.getAccessToken()}` } });
  const body = Buffer.from(await response.arrayBuffer());
  if (!response.ok || !body.equals(bytes)) fail(`media download ${response.status}, ${body.length} bytes`);
  log("media round trip ok");

  alice.stopClient();
  bob.stopClient();
  log("ALL OK");
  process.exit(0);
} catch (e) {
  fail(e?.stack ?? String(e));
}
