// matrix-js-sdk's SlidingSync (simplified sliding sync, MSC4186) against coop (issue 24),
// driven a line at a time from stdin so that a test can change the server between steps:
//   start                 begin syncing: list "all" with ranges [[0, 2]], timeline_limit 1
//   ranges A B            setListRanges("all", [[A, B]])
//   subscribe ROOM        subscribe to ROOM (timeline_limit 5, all of its state)
//   stop                  stop and exit
// The to_device, e2ee, account_data, receipts and typing extensions are registered and what
// they receive is printed. Every line printed is one JSON object:
//   {"what":"complete","pos","count"}, {"what":"room","room_id",...}, {"what":"ext","name","data"},
//   {"what":"error","status","errcode"}.
import * as sdk from "matrix-js-sdk";
import { ExtensionState, SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";
import readline from "node:readline";

const [baseUrl, accessToken, userId, deviceId] = process.argv.slice(2);
const say = (object) => console.log(JSON.stringify(object));

const client = sdk.createClient({ baseUrl, accessToken, userId, deviceId });
const requiredState = [["m.room.name", ""], ["m.room.member", "$ME"], ["m.room.member", "$LAZY"], ["m.room.encryption", ""]];
const lists = new Map([["all", { ranges: [[0, 2]], timeline_limit: 1, required_state: requiredState, filters: {} }]]);
const subscription = { timeline_limit: 5, required_state: [["*", "*"]] };
const sync = new SlidingSync(undefined, lists, subscription, client, 5000);

// Each extension asks to be on and reports what it gets; to_device acknowledges with `since`.
let toDeviceSince;
for (const name of ["to_device", "e2ee", "account_data", "receipts", "typing"]) {
  sync.registerExtension({
    name: () => name,
    when: () => ExtensionState.PostProcess,
    onRequest: () => (name === "to_device" ? { enabled: true, limit: 100, since: toDeviceSince } : { enabled: true }),
    onResponse: (data) => {
      if (name === "to_device" && data?.next_batch) toDeviceSince = data.next_batch;
      say({ what: "ext", name, data });
    },
  });
}

sync.on(SlidingSyncEvent.Lifecycle, (state, response, error) => {
  if (error) say({ what: "error", status: error.httpStatus, errcode: error.errcode });
  else if (state === SlidingSyncState.Complete) say({ what: "complete", pos: response.pos, count: response.lists?.all?.count });
});
sync.on(SlidingSyncEvent.RoomData, (roomId, data) => {
  say({
    what: "room",
    room_id: roomId,
    initial: data.initial === true,
    name: data.name,
    heroes: (data.heroes ?? []).map((h) => h.user_id),
    bodies: (data.timeline ?? []).map((e) => e.content?.body ?? e.type),
    state: (data.required_state ?? []).map((e) => [e.type, e.state_key]),
    limited: data.limited,
    num_live: data.num_live,
    bump_stamp: data.bump_stamp,
    joined_count: data.joined_count,
    notification_count: data.notification_count,
    invite: data.invite_state !== undefined,
    expanded: data.unstable_expanded_timeline === true,
  });
});

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const [command, ...args] = line.trim().split(/\s+/);
  if (command === "start") sync.start();
  else if (command === "ranges") sync.setListRanges("all", [[Number(args[0]), Number(args[1])]]);
  else if (command === "subscribe") sync.modifyRoomSubscriptions(new Set([args[0]]));
  else if (command === "stop") {
    sync.stop();
    process.exit(0);
  }
});
say({ what: "ready" });
