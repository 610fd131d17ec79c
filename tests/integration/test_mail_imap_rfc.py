"""IMAP to the letter of RFC 3501 and RFC 9051, over raw sockets so every byte the server sends is
seen: BODY against BODYSTRUCTURE, subtypes as written, address groups in ENVELOPE and SORT,
messages expunged by another session, \\Recent, CONDSTORE enabled by FETCH MODSEQ and STATUS,
MOVE into the selected mailbox, LIST-EXTENDED and LSUB."""
import base64
import os
import re
import socket
import sqlite3
import subprocess
import time
import zlib

from coopshard import Shard, bin_dir_from_args, run_tests
from test_mail_imap import STRONG, raw_login, start, tls_context

BIN = bin_dir_from_args()


class Raw:
    """One logged-in IMAP connection: run() sends a command and returns (untagged, tagged)."""

    def __init__(self, ports, log_in=True):
        if log_in:
            self.sock, self.reader = raw_login(ports)
        else:
            self.sock = tls_context().wrap_socket(socket.create_connection(("127.0.0.1", ports["imaps"]), timeout=10))
            self.reader = self.sock.makefile("rb")
            assert self.reader.readline().startswith(b"* OK")
        self.n = 0

    def run(self, text, literal=None):
        self.n += 1
        tag = b"t%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text.encode() + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        untagged = []
        while True:
            line = self.reader.readline()
            assert line, "the server closed the connection"
            literal_size = re.search(rb"\{(\d+)\}\r\n$", line)
            if literal_size:  # a literal inside an untagged response: read it whole, then the rest
                line += self.reader.read(int(literal_size.group(1))) + self.reader.readline()
            if line.startswith(tag + b" "):
                return untagged, line.rstrip(b"\r\n")
            untagged.append(line.rstrip(b"\r\n"))

    def ok(self, text, literal=None):
        untagged, tagged = self.run(text, literal)
        assert b" OK" in tagged, (text, tagged, untagged)
        return untagged

    def close(self):
        self.sock.close()


MULTIPART = (b"From: Carol <carol@example.org>\r\n"
             b"To: friends: a@example.com, B <b@example.com>;, zed@example.com\r\n"
             b"Cc: undisclosed-recipients:;\r\n"
             b"Subject: groups\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/Mixed; boundary=xx\r\n\r\n"
             b"--xx\r\nContent-Type: text/X-MyOwn; charset=utf-8\r\nContent-Language: en\r\n\r\nown\r\n"
             b"--xx\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--xx--\r\n")


def test_body_bodystructure_subtypes_and_groups():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        a.ok("APPEND INBOX", MULTIPART)
        a.ok("APPEND INBOX", b"From: x@example.org\r\nCc: Bob <bob@example.org>\r\nSubject: plain\r\n\r\nhi\r\n")
        a.ok("SELECT INBOX")
        # RFC 9051 6.4.5: BODY is the non-extensible form, BODYSTRUCTURE carries extension data.
        body = a.ok("FETCH 1 BODY")
        assert len(body) == 1 and b"BODY ((" in body[0] and b"BODYSTRUCTURE" not in body[0], body
        assert b'("text" "X-MyOwn" ("CHARSET" "utf-8") NIL NIL "7BIT" 3 1)' in body[0], body
        assert body[0].endswith(b' "Mixed"))'), body
        full = a.ok("FETCH 1 FULL")
        assert b" BODY ((" in full[0] and b"BODYSTRUCTURE" not in full[0] and b"ENVELOPE" in full[0], full
        both = a.ok("FETCH 1 (BODY BODYSTRUCTURE)")[0]
        assert both.count(b"BODYSTRUCTURE (") == 1 and both.count(b"(BODY (") == 1, both
        structure = a.ok("FETCH 1 BODYSTRUCTURE")[0]
        assert b'"X-MyOwn"' in structure and b'("attachment" ("FILENAME" "a.pdf"))' in structure, structure
        assert b'"Mixed" ("BOUNDARY" "xx") NIL NIL NIL)' in structure, structure
        # An item asked twice is answered once.
        assert a.ok("FETCH 2 (FLAGS FLAGS UID)")[0].count(b"FLAGS") == 1
        # RFC 3501 7.4.2: a group is (NIL NIL "name" NIL) ... (NIL NIL NIL NIL), even an empty one.
        envelope = a.ok("FETCH 1 ENVELOPE")[0]
        assert (b'((NIL NIL "friends" NIL)(NIL NIL "a" "example.com")("B" NIL "b" "example.com")(NIL NIL NIL NIL)'
                b'(NIL NIL "zed" "example.com"))') in envelope, envelope
        assert b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))' in envelope, envelope
        # RFC 5256 SORT CC: the first cc address's mailbox, the group's name for a group.
        assert a.ok("SORT (CC) UTF-8 ALL") == [b"* SORT 2 1"]
        assert a.ok("SORT (REVERSE CC) UTF-8 ALL") == [b"* SORT 1 2"]
        # A message stored before summaries were kept gets its structure from its bytes.
        index = sqlite3.connect(os.path.join(shard.home, "mail", "alice.db"), timeout=10)
        index.execute("DELETE FROM summaries WHERE uid = 1 AND mailbox_id = (SELECT id FROM mailboxes WHERE name = 'INBOX')")
        index.commit()
        assert index.total_changes == 1
        index.close()
        assert a.ok("FETCH 1 BODYSTRUCTURE")[0] == structure
        a.close()
        shard.coop("down")


def test_a_message_another_session_expunged_is_never_made_up():
    with Shard(BIN) as shard:
        ports = start(shard)
        a, b = Raw(ports), Raw(ports)
        for n in range(3):
            a.ok("APPEND INBOX", b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n))
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        # RFC 9051 7.5.1: no EXPUNGE during FETCH, and no invented data: NO [EXPUNGEISSUED]
        # with the messages that still exist.
        untagged, tagged = a.run("FETCH 1:3 (BODYSTRUCTURE BODY.PEEK[])")
        assert tagged.startswith(b"t%d NO [EXPUNGEISSUED]" % a.n), tagged
        assert [u.split(b" ")[1] for u in untagged if b"FETCH" in u] == [b"1", b"3"], untagged
        assert not any(b"EXPUNGE" in u.split(b"]")[0] for u in untagged if not u.startswith(b"* 1 ") and not u.startswith(b"* 3 ")), untagged
        untagged, tagged = a.run("UID FETCH 2 (BODYSTRUCTURE)")
        assert tagged.startswith(b"t%d OK [EXPUNGEISSUED]" % a.n) and not untagged, (tagged, untagged)
        # The next command that may tell, tells; then the numbers are the new ones.
        assert b"* 2 EXPUNGE" in a.ok("NOOP")
        assert a.ok("FETCH 2 (UID)") == [b"* 2 FETCH (UID 3)"]
        a.close()
        b.close()
        shard.coop("down")


def test_recent_is_told_to_one_session():
    with Shard(BIN) as shard:
        ports = start(shard)
        a, b, c = Raw(ports), Raw(ports), Raw(ports)
        a.ok("APPEND INBOX", b"Subject: one\r\n\r\n1\r\n")
        status = c.ok("STATUS INBOX (RECENT MESSAGES)")
        assert status == [b'* STATUS "INBOX" (RECENT 1 MESSAGES 1)'], status
        assert b"* 1 RECENT" in a.ok("SELECT INBOX")
        assert b"* 0 RECENT" in b.ok("SELECT INBOX")  # a saw it first
        assert c.ok("STATUS INBOX (RECENT)") == [b'* STATUS "INBOX" (RECENT 0)']
        assert a.ok("FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS (\\Recent))"]
        assert b.ok("FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())"]
        # A new message: the session whose command sees it first gets it as \Recent.
        c.ok("APPEND INBOX", b"Subject: two\r\n\r\n2\r\n")
        told = b.ok("NOOP")
        assert told == [b"* 2 EXISTS", b"* 1 RECENT"], told
        assert a.ok("NOOP") == [b"* 2 EXISTS", b"* 1 RECENT"]
        assert b.ok("SEARCH RECENT") == [b"* SEARCH 2"] and a.ok("SEARCH RECENT") == [b"* SEARCH 1"]
        assert b.ok("SEARCH NEW") == [b"* SEARCH 2"] and b.ok("SEARCH OLD") == [b"* SEARCH 1"]
        # EXAMINE looks without taking: the next SELECT still gets them.
        c.ok("APPEND INBOX", b"Subject: three\r\n\r\n3\r\n")
        assert b"* 1 RECENT" in c.ok("EXAMINE INBOX")
        assert b"* 1 RECENT" in c.ok("SELECT INBOX")
        # IMAP4rev2 has no \Recent (RFC 9051 appendix E).
        d = Raw(ports)
        d.ok("ENABLE IMAP4rev2")
        d.ok("APPEND INBOX", b"Subject: four\r\n\r\n4\r\n")
        selected = d.ok("SELECT INBOX")
        assert not any(b"RECENT" in line for line in selected), selected
        assert b"\\Recent" not in d.ok("FETCH 4 FLAGS")[0]
        for session in (a, b, c, d):
            session.close()
        shard.coop("down")


def test_condstore_enabling_commands_and_move_into_the_selected_mailbox():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        a.ok("APPEND INBOX", b"Subject: one\r\n\r\n1\r\n")
        a.ok("SELECT INBOX")
        assert b"MODSEQ" not in a.ok("FETCH 1 FLAGS")[0]
        # RFC 7162 3.1: FETCH with MODSEQ enables CONDSTORE; from then FLAGS come with MODSEQ.
        assert b"MODSEQ (" in a.ok("FETCH 1 (MODSEQ)")[0]
        assert b"MODSEQ (" in a.ok("FETCH 1 FLAGS")[0]
        b = Raw(ports)
        b.ok("STATUS INBOX (HIGHESTMODSEQ)")
        b.ok("SELECT INBOX")
        assert b"MODSEQ (" in b.ok("FETCH 1 FLAGS")[0]
        # MOVE and COPY into the selected mailbox say EXISTS before the tagged OK.
        moved = a.ok("MOVE 1 INBOX")
        assert b"* 1 EXPUNGE" in moved and b"* 1 EXISTS" in moved, moved
        copied = a.ok("COPY 1 INBOX")
        assert b"* 2 EXISTS" in copied, copied
        a.close()
        b.close()
        shard.coop("down")


def test_search_sort_id_expunge_and_capabilities():
    with Shard(BIN) as shard:
        ports = start(shard)
        a, b = Raw(ports), Raw(ports)
        caps = a.ok("CAPABILITY")[0].split()
        assert b"ESEARCH" in caps and b"IMAP4rev2" in caps, caps  # RFC 9051 requires ESEARCH of rev2 servers
        # RFC 5322 4.4 obsolete syntax with comments, and an encoded name: SEARCH FROM finds both.
        a.ok("APPEND INBOX", b"From: carol (Carol) @ example (the org) . org\r\nSubject: _under\r\n\r\n1\r\n")
        a.ok("APPEND INBOX", b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.org>\r\nSubject: Apple\r\n\r\n2\r\n")
        a.ok("APPEND INBOX", b"From: dave@example.org\r\nSubject: zebra\r\n\r\n3\r\n")
        a.ok("SELECT INBOX")
        assert a.ok("SEARCH FROM carol@example.org") == [b"* SEARCH 1"]
        assert a.ok("SEARCH CHARSET UTF-8 FROM", literal="Jürgen".encode()) == [b"* SEARCH 2"]
        assert a.ok("SEARCH FROM example.org") == [b"* SEARCH 1 2 3"]
        # RFC 5256: SUBJECT in i;ascii-casemap order, where '_' sorts after the letters' upper case.
        assert a.ok("SORT (SUBJECT) UTF-8 ALL") == [b"* SORT 2 3 1"]
        # RFC 2971: 30 fields with values of 1,024 octets are allowed, before login as after.
        pairs = " ".join('"f%d" "%s"' % (n, "v" * 1024) for n in range(30))
        assert a.ok("ID (%s)" % pairs)[0].startswith(b"* ID (")
        untagged, tagged = a.run("ID (%s \"f30\" \"x\")" % pairs)
        assert b" BAD " in tagged, tagged
        raw = Raw(ports, log_in=False)
        assert raw.ok("ID (%s)" % pairs)[0].startswith(b"* ID (")
        assert raw.ok("ID NIL")[0].startswith(b"* ID (")
        raw.close()
        # LIST patterns may hold '~' (an ATOM-CHAR), which is not a literal8 here.
        assert b"BAD" not in a.run('LIST "" ~foo')[1]
        # A second EXPUNGE of what another session expunged reports it (RFC 9051 7.5.1).
        b.ok("SELECT INBOX")
        a.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        b.ok("NOOP")
        a.ok("EXPUNGE")
        told = b.ok("EXPUNGE")
        assert told == [b"* 3 EXPUNGE"], told
        a.close()
        b.close()
        shard.coop("down")


def test_list_extended_and_lsub():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        for name in ("Foo", "Foo/Bar", "Baz", "Baz/Qux", "Gone"):
            a.ok("CREATE %s" % name)
        a.ok("UNSUBSCRIBE Foo")
        a.ok("UNSUBSCRIBE Baz/Qux")
        a.ok("DELETE Gone")  # its name stays subscribed (RFC 9051 6.3.7)

        def names(lines):
            return {re.search(rb'"/" ("[^"]*")', l).group(1): l for l in lines}

        # RFC 5258 3: RECURSIVEMATCH alone is BAD.
        assert b" BAD " in a.run('LIST (RECURSIVEMATCH) "" "*"')[1]
        assert b" BAD " in a.run('LIST (RECURSIVEMATCH REMOTE) "" "*"')[1]
        # SUBSCRIBED selects subscribed names, whether they exist or not.
        listed = names(a.ok('LIST (SUBSCRIBED) "" "*"'))
        assert b'"Foo"' not in listed and b'"Foo/Bar"' in listed and b'"Baz/Qux"' not in listed, listed
        assert listed[b'"Gone"'] == b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"', listed
        assert b"\\Subscribed" in listed[b'"Baz"'] and b"CHILDINFO" not in listed[b'"Baz"']
        # RECURSIVEMATCH: a parent that matches the pattern but not the selection is listed
        # when a descendant is selected, with CHILDINFO.
        listed = names(a.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"'))
        assert listed[b'"Foo"'] == b'* LIST (\\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))', listed
        assert b'"Baz"' in listed and b"CHILDINFO" not in listed[b'"Baz"'], listed  # its child is not subscribed
        assert b'"Foo/Bar"' not in listed
        # Plain LIST with RETURN (SUBSCRIBED): existing mailboxes only.
        listed = names(a.ok('LIST "" "*" RETURN (SUBSCRIBED)'))
        assert b'"Gone"' not in listed and b"\\Subscribed" in listed[b'"Foo/Bar"'] and b"\\Subscribed" not in listed[b'"Foo"']
        # LSUB with %: the unsubscribed parent of a subscribed child is \Noselect, and goes
        # when the child is unsubscribed.
        listed = names(a.ok('LSUB "" "%"'))
        assert listed[b'"Foo"'] == b'* LSUB (\\Noselect) "/" "Foo"', listed
        assert b'"Foo/Bar"' not in listed and b'"Gone"' in listed
        a.ok("UNSUBSCRIBE Foo/Bar")
        assert b'"Foo"' not in names(a.ok('LSUB "" "%"'))
        a.ok("UNSUBSCRIBE Gone")  # a name without a mailbox can be unsubscribed
        assert b" NO " in a.run("UNSUBSCRIBE Gone")[1]
        assert b'"Gone"' not in names(a.ok('LSUB "" "*"'))
        a.close()
        shard.coop("down")


def test_a_session_reads_its_mailbox_by_id_through_renames_and_hears_bye_when_it_goes():
    with Shard(BIN) as shard:
        ports = start(shard)
        a, b = Raw(ports), Raw(ports)
        a.ok("CREATE Work")
        a.ok("APPEND Work", b"Subject: the original\r\n\r\nmine\r\n")
        a.ok("SELECT Work")
        # Another session renames it and makes a new Work whose first message has UID 1 too.
        b.ok("RENAME Work Old")
        b.ok("CREATE Work")
        b.ok("APPEND Work", b"Subject: an impostor\r\n\r\nnot yours\r\n")
        fetched = a.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"the original" in fetched[0] and b"impostor" not in fetched[0], fetched
        a.ok("NOOP")
        # It follows the rename: DELETE of its new name is refused as in use.
        assert b"[INUSE]" in a.run("DELETE Old")[1]
        # When the mailbox goes, the session is told BYE and ends.
        b.ok("DELETE Old")
        a.sock.sendall(b"z NOOP\r\n")
        rest = a.reader.read()
        assert b"* BYE the selected mailbox was deleted" in rest, rest
        a.close()
        b.close()
        shard.coop("down")


def test_searchres_esort_sort_display_within_and_savedate():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        caps = a.ok("CAPABILITY")[0].split()
        for cap in (b"SEARCHRES", b"ESORT", b"SORT=DISPLAY", b"WITHIN", b"STATUS=SIZE", b"MULTIAPPEND", b"SAVEDATE"):
            assert cap in caps, (cap, caps)
        a.ok("APPEND INBOX", b"From: Zed <a@example.org>\r\nTo: x@example.org\r\nSubject: one\r\n\r\n1\r\n")
        a.ok("APPEND INBOX", b"From: b@example.org\r\nTo: Ann <y@example.org>\r\nSubject: two\r\n\r\n2\r\n")
        a.ok('APPEND INBOX "01-Jan-2020 10:00:00 +0000"', b"From: Amy <c@example.org>\r\nSubject: three\r\n\r\n3\r\n")
        a.ok("SELECT INBOX")
        # RFC 5182: RETURN (SAVE) alone answers nothing; "$" then names those messages.
        untagged = a.ok("SEARCH RETURN (SAVE) SUBJECT t")
        assert untagged == [], untagged
        assert a.ok("FETCH $ (UID)") == [b"* 2 FETCH (UID 2)", b"* 3 FETCH (UID 3)"]
        assert a.ok("UID SEARCH UID $ NOT SUBJECT two") == [b"* SEARCH 3"]
        esearch = a.ok("SEARCH RETURN (SAVE COUNT) SUBJECT one")
        assert esearch and b"COUNT 1" in esearch[0], esearch
        assert a.ok("SEARCH $") == [b"* SEARCH 1"]
        # RFC 5267 ESORT: MIN and MAX in sort order, ALL in sort order.
        esort = a.ok("SORT RETURN (MIN MAX COUNT ALL) (REVERSE SUBJECT) UTF-8 ALL")
        assert esort == [b'* ESEARCH (TAG "t%d") MIN 2 MAX 1 COUNT 3 ALL 2,3,1' % a.n], esort
        # RFC 5957: the display name, else the address: Amy, b@example.org, Zed.
        assert a.ok("SORT (DISPLAYFROM) UTF-8 ALL") == [b"* SORT 3 2 1"]
        assert a.ok("SORT (DISPLAYTO) UTF-8 ALL") == [b"* SORT 3 2 1"]  # none, Ann, x@example.org
        # RFC 5032 WITHIN: by internal date, in seconds from now.
        assert a.ok("SEARCH OLDER 86400") == [b"* SEARCH 3"]
        assert a.ok("SEARCH YOUNGER 86400") == [b"* SEARCH 1 2"]
        assert b" BAD " in a.run("SEARCH OLDER x")[1]
        # RFC 3502 MULTIAPPEND: several messages in one command, all or none, UIDs as a set.
        a.sock.sendall(b't90 APPEND Archive (\\Seen) {18+}\r\nSubject: m1\r\n\r\nx\r\n {18+}\r\nSubject: m2\r\n\r\ny\r\n\r\n')
        reply = a.reader.readline()
        assert reply.startswith(b"t90 OK [APPENDUID ") and reply.split()[4] == b"1:2]", reply
        assert b"MESSAGES 2" in a.ok("STATUS Archive (MESSAGES)")[0]
        a.sock.sendall(b"t91 APPEND Nowhere {18+}\r\nSubject: m1\r\n\r\nx\r\n {18+}\r\nSubject: m2\r\n\r\ny\r\n\r\n")
        assert a.reader.readline().startswith(b"t91 NO [TRYCREATE]")
        # RFC 8514 SAVEDATE: when the message came in, not its internal date.
        fetched = a.ok("FETCH 3 (INTERNALDATE SAVEDATE)")[0]
        assert b'INTERNALDATE "01-Jan-2020' in fetched and b'SAVEDATE "' + time.strftime("%d-%b-%Y", time.gmtime()).encode() in fetched, fetched
        assert a.ok("SEARCH SAVEDBEFORE 1-Jan-2021") == [b"* SEARCH"]
        assert a.ok("SEARCH SAVEDSINCE 1-Jan-2021") == [b"* SEARCH 1 2 3"]
        assert a.ok("SEARCH SAVEDATESUPPORTED") == [b"* SEARCH 1 2 3"]
        # STATUS=SIZE (RFC 8438).
        assert re.search(rb"SIZE \d+", a.ok("STATUS INBOX (SIZE)")[0])
        a.close()
        shard.coop("down")


def test_preview():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        assert b"PREVIEW" in a.ok("CAPABILITY")[0].split()
        # RFC 8970: the first text part, decoded (here ISO-8859-1 quoted-printable), blanks collapsed.
        a.ok("APPEND INBOX", b"Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
                             b"Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9   au\r\n\r\nlait " + b"x" * 400 + b"\r\n")
        # Only HTML: its text without the markup.
        a.ok("APPEND INBOX", b"Subject: html\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
                             b"--b\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b> &amp; welcome</p>\r\n--b--\r\n")
        a.ok("APPEND INBOX", b"Subject: none\r\nMIME-Version: 1.0\r\nContent-Type: application/pdf\r\n\r\nAAAA\r\n")
        a.ok("SELECT INBOX")
        first = a.ok("FETCH 1 (PREVIEW)")[0]
        text = first.split(b"}\r\n", 1)[1].rsplit(b")", 1)[0].decode()
        assert text.startswith("Café au lait xxx") and len(text) == 256, (len(text), text[:40])
        assert a.ok("FETCH 2 (PREVIEW (LAZY))") == [b'* 2 FETCH (PREVIEW "Hello there & welcome")']
        assert a.ok("FETCH 3 PREVIEW") == [b"* 3 FETCH (PREVIEW NIL)"]
        assert b"\\Seen" not in a.ok("FETCH 1 FLAGS")[0]  # a preview is no read
        a.close()
        shard.coop("down")


def test_compress_deflate():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        assert b"COMPRESS=DEFLATE" in a.ok("CAPABILITY")[0].split()
        a.ok("APPEND INBOX", b"Subject: squeezed\r\n\r\n" + b"all work and no play " * 500 + b"\r\n")
        # RFC 4978: the OK comes plain; from then on both ways are raw deflate.
        a.sock.sendall(b"c1 COMPRESS DEFLATE\r\n")
        assert a.reader.readline() == b"c1 OK DEFLATE active\r\n"
        out, inflate = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)

        def run(line):
            a.sock.sendall(out.compress(line) + out.flush(zlib.Z_SYNC_FLUSH))
            got = b""
            while b"\r\n" + line.split(b" ")[0] + b" " not in b"\r\n" + got:
                chunk = a.sock.recv(65536)
                assert chunk, "connection closed"
                got += inflate.decompress(chunk)
            return got

        got = run(b"c2 SELECT INBOX\r\n")
        assert b"* 1 EXISTS" in got and b"c2 OK" in got, got
        got = run(b"c3 FETCH 1 BODY.PEEK[TEXT]\r\n")
        assert got.count(b"all work and no play") == 500 and b"c3 OK" in got
        assert b"c4 NO [COMPRESSIONACTIVE]" in run(b"c4 COMPRESS DEFLATE\r\n")
        a.close()
        # Garbage that does not inflate ends the session, and the worker serves others.
        b = Raw(ports)
        b.sock.sendall(b"d1 COMPRESS DEFLATE\r\n")
        assert b.reader.readline().startswith(b"d1 OK")
        b.sock.sendall(b"\xff" * 64)
        b.sock.settimeout(10)
        try:
            while b.sock.recv(4096):
                pass
        except OSError:
            pass
        b.close()
        # A compression bomb (50 MiB of one letter in about 50 KiB) ends the session too.
        bomb = Raw(ports)
        bomb.sock.sendall(b"e1 COMPRESS DEFLATE\r\n")
        assert bomb.reader.readline().startswith(b"e1 OK")
        squeeze = zlib.compressobj(wbits=-15)
        payload = squeeze.compress(b"e2 NOOP " + b"a" * (50 << 20)) + squeeze.flush(zlib.Z_SYNC_FLUSH)
        assert len(payload) < 100 << 10
        bomb.sock.settimeout(10)
        heard = b""
        try:
            bomb.sock.sendall(payload)
            inflate = zlib.decompressobj(wbits=-15)
            while chunk := bomb.sock.recv(4096):
                heard += inflate.decompress(chunk)
        except OSError:
            pass
        assert b"* BYE" in heard, heard[:200]
        bomb.close()
        c = Raw(ports)
        assert c.ok("NOOP") == []
        c.close()
        shard.coop("down")


def test_metadata():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        assert b"METADATA" in a.ok("CAPABILITY")[0].split()
        # RFC 5464: server ("") and mailbox annotations, set, read by depth, removed with NIL.
        a.ok('SETMETADATA "" (/private/comment "my server")')
        a.ok('SETMETADATA INBOX (/private/comment "mail" /shared/vendor/x/a "1" /shared/vendor/x/a/b "2")')
        assert a.ok('GETMETADATA "" /private/comment') == [b'* METADATA "" (/private/comment "my server")']
        assert a.ok("GETMETADATA inbox (/private/comment /shared/missing)") == [
            b'* METADATA "INBOX" (/private/comment "mail" /shared/missing NIL)']
        assert a.ok("GETMETADATA (DEPTH 1) INBOX /shared/vendor/x") == [
            b'* METADATA "INBOX" (/shared/vendor/x/a "1")']
        assert a.ok("GETMETADATA (DEPTH infinity) INBOX /shared/vendor/x") == [
            b'* METADATA "INBOX" (/shared/vendor/x/a "1" /shared/vendor/x/a/b "2")']
        untagged, tagged = a.run("GETMETADATA (MAXSIZE 2) INBOX /private/comment")
        assert untagged == [] and b"[METADATA LONGENTRIES 4]" in tagged, (untagged, tagged)
        a.ok("SETMETADATA INBOX (/private/comment NIL)")
        assert a.ok("GETMETADATA INBOX /private/comment") == [b'* METADATA "INBOX" (/private/comment NIL)']
        # Bad names, values over the limit and mailboxes that do not exist are refused.
        for bad in ("SETMETADATA INBOX (/other/x \"v\")", "SETMETADATA INBOX (/private/a//b \"v\")",
                    "SETMETADATA INBOX (/private/a* \"v\")", "GETMETADATA INBOX /private/"):
            assert b" BAD " in a.run(bad)[1], bad
        untagged, tagged = a.run("SETMETADATA INBOX (/private/big", literal=b"x" * (70 << 10) + b")")
        assert b"NO [METADATA MAXSIZE" in tagged, tagged
        assert b" NO " in a.run('SETMETADATA Nowhere (/private/comment "x")')[1]
        # Renaming a mailbox takes its annotations along.
        a.ok("CREATE Projects")
        a.ok('SETMETADATA Projects (/private/color "blue")')
        a.ok("RENAME Projects Archive/Projects")
        assert a.ok("GETMETADATA Archive/Projects /private/color") == [b'* METADATA "Archive/Projects" (/private/color "blue")']
        a.close()
        shard.coop("down")


def gsasl(ports, user, password):
    """GNU SASL's own client (Debian's gsasl) logging in over STARTTLS with SCRAM-SHA-256; it
    checks the server's signature (v=) itself and fails when it is wrong."""
    out = subprocess.run(["gsasl", "--client", "--imap", f"--connect=127.0.0.1:{ports['imap']}", "--starttls",
                          "--x509-ca-file=", "--no-cb", "-m", "SCRAM-SHA-256", "-a", user, "-p", password, "--verbose"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and ". OK [CAPABILITY" in out.stdout, out.stdout


def test_scram_sha_256():
    with Shard(BIN) as shard:
        ports = start(shard)
        assert b"AUTH=SCRAM-SHA-256" in Raw(ports, log_in=False).ok("CAPABILITY")[0].split()
        ok, transcript = gsasl(ports, "alice", STRONG)
        assert ok, transcript
        assert "AUTHENTICATE SCRAM-SHA-256" in transcript
        # A wrong password and an unknown user fail alike, at the end of the exchange.
        ok, transcript = gsasl(ports, "alice", "not the password")
        assert not ok and "NO [AUTHENTICATIONFAILED]" in transcript, transcript
        ok, transcript = gsasl(ports, "nobody", STRONG)
        assert not ok and "NO [AUTHENTICATIONFAILED]" in transcript, transcript
        # The unknown user was given a salt and iterations as a member is (RFC 5802 9).
        challenges = [base64.b64decode(l[2:]) for l in transcript.splitlines() if l.startswith("+ ") and len(l) > 2]
        assert any(b",s=" in c and b",i=4096" in c for c in challenges), challenges
        # Cancelled, or garbage in the first message: the session goes on.
        raw = Raw(ports, log_in=False)
        raw.sock.sendall(b"a1 AUTHENTICATE SCRAM-SHA-256\r\n")
        assert raw.reader.readline().startswith(b"+")
        raw.sock.sendall(b"*\r\n")
        assert raw.reader.readline().startswith(b"a1 BAD")
        raw.sock.sendall(b"a2 AUTHENTICATE SCRAM-SHA-256 " + base64.b64encode(b"x,,n=alice,r=abc") + b"\r\n")
        assert raw.reader.readline().startswith(b"a2 NO")
        assert raw.ok("NOOP") == []
        # A member from before SCRAM has no secrets yet: one login with the password makes them.
        db = sqlite3.connect(os.path.join(shard.home, "member.db"))
        db.execute("DELETE FROM scram_secrets")
        db.commit()
        db.close()
        assert not gsasl(ports, "alice", STRONG)[0]
        Raw(ports).close()  # LOGIN with the password
        assert gsasl(ports, "alice", STRONG)[0]
        # A new password: the old one's secrets go with it.
        fresh = "another horse battery staple"
        shard.coop("member", "passwd", "alice", "--password-stdin", input=fresh)
        assert not gsasl(ports, "alice", STRONG)[0]
        assert gsasl(ports, "alice", fresh)[0]
        # A suspended member is refused even with the right proof.
        shard.coop("member", "suspend", "alice")
        ok, transcript = gsasl(ports, "alice", fresh)
        assert not ok and ". NO" in transcript, transcript
        shard.coop("down")


def test_catenate():
    with Shard(BIN) as shard:
        ports = start(shard)
        a = Raw(ports)
        assert b"CATENATE" in a.ok("CAPABILITY")[0].split()
        _, tagged = a.run("APPEND INBOX", MULTIPART)
        validity, uid = re.search(rb"APPENDUID (\d+) (\d+)", tagged).groups()
        box = f"/INBOX;UIDVALIDITY={validity.decode()}/;UID={uid.decode()}"

        def catenate(parts):
            """APPEND Drafts CATENATE (...) with LITERAL+ TEXT parts; returns the tagged line."""
            a.n += 1
            tag = b"t%d" % a.n
            command = tag + b" APPEND Drafts CATENATE ("
            for i, (kind, value) in enumerate(parts):
                command += b" " if i else b""
                if kind == "TEXT":
                    command += b"TEXT {%d+}\r\n" % len(value) + value
                else:
                    command += b'URL "' + value.encode() + b'"'
            a.sock.sendall(command + b")\r\n")
            while True:
                line = a.reader.readline()
                if line.startswith(tag + b" "):
                    return line.rstrip(b"\r\n")

        # RFC 4469 3's example: the header of one message, a new first part, a part of the old.
        body = b"\r\n--xx\r\nContent-Type: text/plain\r\n\r\nForwarding the PDF.\r\n--xx\r\n"
        tagged = catenate([("URL", box + "/;SECTION=HEADER"), ("TEXT", body), ("URL", box + "/;SECTION=2.MIME"),
                           ("URL", box + "/;SECTION=2"), ("TEXT", b"\r\n--xx--\r\n")])
        assert b"OK [APPENDUID" in tagged, tagged
        new_uid = int(re.search(rb"APPENDUID \d+ (\d+)", tagged).group(1))
        a.ok("SELECT Drafts")
        fetched = b"".join(a.ok(f"UID FETCH {new_uid} BODY[]"))
        header = MULTIPART[:MULTIPART.index(b"\r\n\r\n") + 4]
        assert header in fetched and b"Forwarding the PDF." in fetched, fetched
        assert b"Content-Disposition: attachment; filename=a.pdf" in fetched and b"AAAA\r\n--xx--" in fetched, fetched
        # A partial range, and a URL without UIDVALIDITY.
        tagged = catenate([("URL", f"/INBOX/;UID={uid.decode()}/;PARTIAL=0.4"), ("TEXT", b"\r\n\r\nshort\r\n")])
        assert b"OK" in tagged, tagged
        # Nothing there, a stale UIDVALIDITY, a URLAUTH: BADURL, and nothing is appended.
        before = a.ok("STATUS Drafts (MESSAGES)")
        for bad in (f"/INBOX/;UID=999", f"/INBOX;UIDVALIDITY=1/;UID={uid.decode()}", box + "/;URLAUTH=anonymous",
                    box + "/;SECTION=9", "/Nowhere/;UID=1"):
            tagged = catenate([("TEXT", b"Subject: x\r\n\r\n"), ("URL", bad)])
            assert b"NO [BADURL" in tagged, (bad, tagged)
        assert a.ok("STATUS Drafts (MESSAGES)") == before
        a.close()
        shard.coop("down")


def test_context_search_updates():
    with Shard(BIN) as shard:
        ports = start(shard)
        a, b = Raw(ports), Raw(ports)
        assert b"CONTEXT=SEARCH" in a.ok("CAPABILITY")[0].split()
        for n in range(3):
            b.ok("APPEND INBOX", b"Subject: m%d\r\n\r\nbody\r\n" % n)
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        # RFC 5267 4.3: the results now, then what changes in them.
        untagged = a.ok("UID SEARCH RETURN (ALL UPDATE) UNSEEN")
        tag = a.n
        assert untagged == [b'* ESEARCH (TAG "t%d") UID ALL 1:3' % tag], untagged
        b.ok("UID STORE 2 +FLAGS (\\Seen)")
        assert b'* ESEARCH (TAG "t%d") UID REMOVEFROM (0 2)' % tag in a.ok("NOOP")
        b.ok("APPEND INBOX", b"Subject: m3\r\n\r\nbody\r\n")
        untagged = a.ok("NOOP")
        assert untagged.index(b"* 4 EXISTS") < untagged.index(b'* ESEARCH (TAG "t%d") UID ADDTO (0 4)' % tag), untagged
        # 4.3.4: a message leaving by EXPUNGE leaves the results first.
        b.ok("UID STORE 1 +FLAGS (\\Deleted)")
        b.ok("EXPUNGE")
        untagged = a.ok("NOOP")
        assert untagged.index(b'* ESEARCH (TAG "t%d") UID REMOVEFROM (0 1)' % tag) < untagged.index(b"* 1 EXPUNGE"), untagged
        # By sequence numbers, and the session's own STORE counts (told before its OK).
        untagged = a.ok("SEARCH RETURN (UPDATE COUNT) FLAGGED")
        seq_tag = a.n
        assert untagged == [b'* ESEARCH (TAG "t%d") COUNT 0' % seq_tag], untagged
        untagged = a.ok("STORE 3 +FLAGS (\\Flagged)")
        assert b'* ESEARCH (TAG "t%d") ADDTO (0 3)' % seq_tag in untagged, untagged
        # Reusing a live tag is BAD; CANCELUPDATE stops one, an unknown tag is NO.
        a.sock.sendall(b"t%d SEARCH RETURN (UPDATE) ALL\r\n" % tag)
        assert a.reader.readline().startswith(b"t%d BAD" % tag)
        a.ok('CANCELUPDATE "t%d"' % tag)
        _, tagged = a.run('CANCELUPDATE "t%d"' % tag)
        assert b" NO " in tagged, tagged
        b.ok("UID STORE 3 +FLAGS (\\Seen)")
        assert not any(b"TAG \"t%d\"" % tag in line for line in a.ok("NOOP"))
        # PARTIAL (4.4): positions of the results; not with ALL.
        assert a.ok("UID SEARCH RETURN (PARTIAL 2:3) ALL") == [b'* ESEARCH (TAG "t%d") UID PARTIAL (2:3 3:4)' % a.n]
        _, tagged = a.run("SEARCH RETURN (PARTIAL 1:2 ALL) ALL")
        assert b" BAD " in tagged, tagged
        # At most ten live searches: the eleventh is answered, with NOUPDATE.
        for _ in range(9):
            a.ok("SEARCH RETURN (UPDATE) ALL")
        untagged = a.ok("SEARCH RETURN (UPDATE COUNT) ALL")
        assert any(line.startswith(b'* NO [NOUPDATE "t%d"]' % a.n) for line in untagged), untagged
        # Closing the mailbox ends them all.
        a.ok("UNSELECT")
        a.ok("SELECT INBOX")
        b.ok("APPEND INBOX", b"Subject: m4\r\n\r\nbody\r\n")
        assert not any(b"ESEARCH" in line for line in a.ok("NOOP"))
        a.close()
        b.close()
        shard.coop("down")


def heard(session, want, seconds=10):
    """Untagged lines the server sends without being asked, until one contains want."""
    session.sock.settimeout(seconds)
    lines = []
    try:
        while True:
            line = session.reader.readline()
            assert line, "the server closed the connection"
            lines.append(line.rstrip(b"\r\n"))
            if want in line:
                return lines
    except OSError:
        raise AssertionError(f"never heard {want!r}; heard {lines!r}")
    finally:
        session.sock.settimeout(30)


def test_notify():
    with Shard(BIN) as shard:
        ports = start(shard)
        a, b = Raw(ports), Raw(ports)
        assert b"NOTIFY" in a.ok("CAPABILITY")[0].split()
        # RFC 5465 5: what coop cannot report is NO [BADEVENT], broken combinations BAD.
        _, tagged = a.run("NOTIFY SET (personal (AnnotationChange))")
        assert b"NO [BADEVENT (MessageNew MessageExpunge FlagChange" in tagged, tagged
        for bad in ("NOTIFY SET (personal (MessageNew))", "NOTIFY SET (personal (FlagChange))",
                    "NOTIFY SET (inboxes (MessageNew (UID) MessageExpunge))", "NOTIFY SET (selected (MailboxName))",
                    "NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed NONE)", "NOTIFY SET (nowhere NONE)"):
            _, tagged = a.run(bad)
            assert b" BAD " in tagged, (bad, tagged)
        # SET STATUS: where message events are wanted, the state now (3.1).
        untagged = a.ok("NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
                        "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange))")
        assert any(l.startswith(b'* STATUS "INBOX" (UIDVALIDITY ') and b"MESSAGES 0" in l for l in untagged), untagged
        # Between commands: a delivery elsewhere is a STATUS (5.1), names are LIST (5.4, 5.5),
        # metadata is METADATA (5.6).
        b.ok("APPEND INBOX", b"Subject: one\r\n\r\nbody\r\n")
        assert b"MESSAGES 1" in heard(a, b'* STATUS "INBOX"')[-1]
        b.ok("CREATE Projects")
        got = heard(a, b"Projects")
        assert got == [b'* LIST (\\Subscribed) "/" "Projects"'], got  # CREATE subscribes
        b.ok("RENAME Projects Archive2")
        got = heard(a, b"OLDNAME")
        assert got[-1] == b'* LIST (\\Subscribed) "/" "Archive2" ("OLDNAME" ("Projects"))', got
        b.ok("DELETE Archive2")
        assert heard(a, b"Archive2")[-1] == b'* LIST (\\NonExistent) "/" "Archive2"'
        b.ok("UNSUBSCRIBE Junk")
        assert heard(a, b'"Junk"')[-1] == b'* LIST () "/" "Junk"'
        b.ok('SETMETADATA INBOX (/private/comment "watched")')
        assert heard(a, b"* METADATA")[-1] == b'* METADATA "INBOX" /private/comment'
        # The selected mailbox (6.1.1 SELECTED): EXISTS with the FETCH asked for, flags, and
        # EXPUNGE, all without a command.
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        b.ok("APPEND INBOX", b"Subject: two\r\n\r\nbody\r\n")
        lines = heard(a, b"* 2 FETCH")
        # (IMAP4rev1 sessions: the new message is \\Recent to whichever of them saw it first)
        assert b"* 2 EXISTS" in lines and lines[-1] in (b"* 2 FETCH (UID 2 FLAGS ())", b"* 2 FETCH (UID 2 FLAGS (\\Recent))"), lines
        b.ok("UID STORE 1 +FLAGS (\\Flagged)")
        assert b"\\Flagged" in heard(a, b"* 1 FETCH")[-1]
        b.ok("UID STORE 1 +FLAGS (\\Deleted)")
        b.ok("EXPUNGE")
        heard(a, b"* 1 EXPUNGE")
        # During IDLE the same events come (4).
        a.sock.sendall(b"i1 IDLE\r\n")
        assert a.reader.readline().startswith(b"+")
        b.ok("CREATE During")
        heard(a, b'"During"')
        a.sock.sendall(b"DONE\r\n")
        heard(a, b"i1 OK")
        # NOTIFY NONE: nothing more between commands.
        a.ok("NOTIFY NONE")
        b.ok("CREATE Quiet")
        a.sock.settimeout(1.5)
        try:
            line = a.reader.readline()
            raise AssertionError(f"heard {line!r} after NOTIFY NONE")
        except OSError:
            pass
        a.close()
        b.close()
        shard.coop("down")


if __name__ == "__main__":
    run_tests([
        test_body_bodystructure_subtypes_and_groups,
        test_a_message_another_session_expunged_is_never_made_up,
        test_recent_is_told_to_one_session,
        test_condstore_enabling_commands_and_move_into_the_selected_mailbox,
        test_search_sort_id_expunge_and_capabilities,
        test_list_extended_and_lsub,
        test_a_session_reads_its_mailbox_by_id_through_renames_and_hears_bye_when_it_goes,
        test_searchres_esort_sort_display_within_and_savedate,
        test_preview,
        test_compress_deflate,
        test_metadata,
        test_scram_sha_256,
        test_catenate,
        test_context_search_updates,
        test_notify,
    ])
