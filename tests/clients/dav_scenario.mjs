// tsdav against coop-dav: discovers the account from the well-known URL, lists calendars and
// address books, writes an event and reads it back. Exits non-zero on the first failure.
import { createDAVClient } from "tsdav";

const [serverUrl, username, password] = process.argv.slice(2);
const fail = (why) => { console.error("FAIL:", why); process.exit(1); };

try {
  const calendars = await createDAVClient({
    serverUrl, credentials: { username, password }, authMethod: "Basic", defaultAccountType: "caldav",
  });
  const list = await calendars.fetchCalendars();
  const cooking = list.find((c) => c.displayName === "Cooking");
  if (!cooking) fail(`calendar not discovered: ${JSON.stringify(list.map((c) => c.displayName))}`);
  console.log("discovered", cooking.url);

  const ics = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tsdav test//EN", "BEGIN:VEVENT", "UID:tsdav-1@test",
    "DTSTAMP:20260101T000000Z", "DTSTART:20260501T100000Z", "DTEND:20260501T110000Z", "SUMMARY:From tsdav",
    "END:VEVENT", "END:VCALENDAR", ""].join("\r\n");
  const created = await calendars.createCalendarObject({ calendar: cooking, filename: "tsdav-1.ics", iCalString: ics });
  if (!created.ok) fail(`PUT answered ${created.status}`);
  const objects = await calendars.fetchCalendarObjects({ calendar: cooking });
  if (!objects.some((o) => (o.data || "").includes("From tsdav"))) fail("the new event is not listed");

  const contacts = await createDAVClient({
    serverUrl, credentials: { username, password }, authMethod: "Basic", defaultAccountType: "carddav",
  });
  const books = await contacts.fetchAddressBooks();
  if (!books.some((b) => b.url.endsWith("/dav/addressbooks/coop/directory/"))) fail(`directory not listed: ${JSON.stringify(books.map((b) => b.url))}`);
  const cards = await contacts.fetchVCards({ addressBook: books.find((b) => b.url.endsWith("/directory/")) });
  if (!cards.some((c) => (c.data || "").includes("FN:Alice Liddell"))) fail("the members directory lacks Alice");
  console.log("ALL OK");
} catch (e) {
  fail(e?.stack ?? String(e));
}
