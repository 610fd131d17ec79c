// matrix-js-sdk reads back the Jitsi call coop wrote into a room: the im.vector.modular.widgets
// state event and io.element.widgets.layout, checked against what Element's widget code reads
// (WidgetUtils.getRoomWidgets: content.type and content.url; the Jitsi wrapper's data fields;
// WidgetLayoutStore: widgets[id].container). Prints what it found as JSON after
// "RESULT " (the SDK logs to the same stdout).
import * as sdk from "matrix-js-sdk";

const [baseUrl, user, password, roomId] = process.argv.slice(2);
const fail = (why) => { console.error("FAIL:", why); process.exit(1); };

const anonymous = sdk.createClient({ baseUrl });
const r = await anonymous.login("m.login.password", { identifier: { type: "m.id.user", user }, password });
const client = sdk.createClient({ baseUrl, accessToken: r.access_token, userId: r.user_id, deviceId: r.device_id });
const ready = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => { if (state === "PREPARED") resolve(); }));
await client.startClient({ initialSyncLimit: 5 });
await Promise.race([ready, new Promise((_, no) => setTimeout(() => no(new Error("no first sync")), 20000))]);
try {
  const room = client.getRoom(roomId);
  if (!room) fail(`${user} does not see ${roomId}`);
  // Element's getRoomWidgets: the events with a type and a URL are the room's widgets.
  const widgets = room.currentState.getStateEvents("im.vector.modular.widgets")
    .filter((e) => e.getContent().type && e.getContent().url)
    .map((e) => ({ id: e.getStateKey(), sender: e.getSender(), content: e.getContent() }));
  const layoutEvent = room.currentState.getStateEvents("io.element.widgets.layout", "");
  const layout = layoutEvent ? layoutEvent.getContent() : null;
  // Element's widget-api and Jitsi wrapper: what must be there for the call to open.
  for (const w of widgets) {
    const c = w.content;
    if (!["jitsi", "m.jitsi"].includes(c.type)) continue;
    for (const field of ["conferenceId", "domain", "isAudioOnly"])
      if (!(field in (c.data || {}))) fail(`widget ${w.id} has no data.${field}`);
    if (typeof c.name !== "string") fail(`widget ${w.id} has no name`);
    const url = new URL(c.url);
    if (url.searchParams.get("confId") !== c.data.conferenceId) fail(`widget ${w.id}: confId is not the conference`);
    const fragment = new URLSearchParams(url.hash.substring(1));
    for (const param of ["conferenceDomain", "conferenceId", "isAudioOnly", "displayName", "userId", "roomId"])
      if (!fragment.has(param)) fail(`widget ${w.id}: the wrapper URL lacks ${param}`);
  }
  console.log("RESULT " + JSON.stringify({ widgets, layout }));
} finally {
  client.stopClient();
}
process.exit(0);
