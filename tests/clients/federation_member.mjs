// matrix-js-sdk as a member of one shard in a room that lives on another (issue 23): joins
// over federation, says hello, waits for the other shard's member to type and answer, and
// sends a read receipt for the answer. Prints each step; exits non-zero on the first failure.
import * as sdk from "matrix-js-sdk";

const [baseUrl, user, password, roomId, via] = process.argv.slice(2);
const log = (...a) => console.log(...a);
const fail = (why) => { console.error("FAIL:", why); process.exit(1); };
const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));
const within = (promise, what, ms = 30000) => Promise.race([promise, timeout(ms, what)]);

try {
  const anonymous = sdk.createClient({ baseUrl });
  const r = await anonymous.login("m.login.password", { identifier: { type: "m.id.user", user }, password });
  const client = sdk.createClient({ baseUrl, accessToken: r.access_token, userId: r.user_id, deviceId: r.device_id });
  const ready = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => { if (state === "PREPARED") resolve(); }));
  await client.startClient({ initialSyncLimit: 20 });
  await within(ready, "first sync");

  await client.joinRoom(roomId, { viaServers: [via] });
  // The room comes with the next sync (js-sdk emits no membership event for a room it first
  // sees as joined): look until it is there.
  await within((async () => {
    while (client.getRoom(roomId)?.getMyMembership() !== "join") await new Promise((r) => setTimeout(r, 100));
  })(), "the joined room in sync");
  const room = client.getRoom(roomId);
  log("joined", roomId, "named", room.name);

  const typing = within(new Promise((resolve) => {
    client.on(sdk.RoomMemberEvent.Typing, (event, member) => {
      if (member.roomId === roomId && member.userId.endsWith(`:${via}`) && member.typing) resolve(member.userId);
    });
  }), "typing from the other shard");
  const answer = within(new Promise((resolve) => {
    client.on(sdk.RoomEvent.Timeline, (event) => { if (event.getRoomId() === roomId && event.getContent()?.body === "hello js-sdk") resolve(event); });
  }), "the answer from the other shard");
  await client.sendTextMessage(roomId, "hello from js-sdk");
  log("said hello");
  log("typing:", await typing);
  const event = await answer;
  log("answer from", event.getSender());
  await client.sendReadReceipt(event);
  log("receipt sent");
  client.stopClient();
  log("ALL OK");
  process.exit(0);
} catch (e) {
  fail(e?.stack ?? String(e));
}
