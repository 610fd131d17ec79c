"""Peers for outbound mail tests: an SMTP receiver the test controls and a DNS server on
loopback (python3-dnslib). Both run in threads of the test process and stop with it."""
import asyncio
import socket
import threading

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpReceiver:
    """A small ESMTP server (RFC 5321) in a thread. Each received message is kept as
    (sender, [recipients], bytes). rcpt(address) may return a reply other than 250 to refuse
    one recipient; data_reply answers the end of DATA. stop()/start() take it off and back
    on the same port."""

    def __init__(self, port=None, hostname="receiver.test"):
        self.port = port or free_port()
        self.hostname = hostname
        self.messages = []
        self.commands = []
        self.rcpt = lambda address: "250 2.1.5 ok"
        self.data_reply = "250 2.0.0 queued"
        self.greeting = "220 {} ESMTP test receiver"
        self._loop = None
        self._server = None
        self._thread = None
        self._lock = threading.Lock()

    async def _session(self, reader, writer):
        def send(line):
            writer.write((line + "\r\n").encode())

        send(self.greeting.format(self.hostname))
        sender, recipients, in_data, lines = None, [], False, []
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        body = b"".join(l[1:] if l.startswith(b"..") else l for l in lines)
                        reply = self.data_reply
                        if reply.startswith("250"):
                            with self._lock:
                                self.messages.append((sender, list(recipients), body))
                        send(reply)
                        sender, recipients, lines = None, [], []
                    else:
                        lines.append(line)
                    await writer.drain()
                    continue
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    self.commands.append(text)
                verb = text[:4].upper()
                if verb == "EHLO":
                    send(f"250-{self.hostname}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 100000000")
                elif verb == "HELO":
                    send(f"250 {self.hostname}")
                elif verb == "MAIL":
                    sender = text[text.index("<") + 1:text.index(">")]
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    address = text[text.index("<") + 1:text.index(">")]
                    reply = self.rcpt(address)
                    if reply.startswith("250"):
                        recipients.append(address)
                    send(reply)
                elif verb == "DATA":
                    in_data = True
                    send("354 go ahead")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    await writer.drain()
                    break
                else:
                    send("250 2.0.0 ok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    def start(self):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._session, "127.0.0.1", self.port, reuse_address=True))
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self):
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def received(self):
        with self._lock:
            return list(self.messages)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Zone(BaseResolver):
    def __init__(self):
        self.records = {}  # (name, qtype) -> [rdata]
        self.custom = None  # request -> reply, instead of the records (a test's own rules)

    def resolve(self, request, handler):
        if self.custom:
            return self.custom(request)
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        known = any(n == name for (n, _) in self.records)
        for rdata in self.records.get((name, qtype), []):
            reply.add_answer(RR(request.q.qname, getattr(QTYPE, qtype), rdata=rdata, ttl=0))
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DnsZone:
    """A DNS server on 127.0.0.1 (UDP) answering from records the test adds; names it
    does not know are NXDOMAIN. coop points at it with [dns] servers = ["127.0.0.1@PORT"]."""

    def __init__(self):
        self.port = free_port()
        self.zone = _Zone()
        self.server = DNSServer(self.zone, port=self.port, address="127.0.0.1",
                                logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))

    def add(self, name, qtype, rdata):
        self.zone.records.setdefault((name.rstrip(".").lower(), qtype), []).append(rdata)

    def mx(self, domain, preference, exchange):
        self.add(domain, "MX", MX(DNSLabel(exchange), preference))

    def a(self, name, address):
        self.add(name, "A", A(address))

    def aaaa(self, name, address):
        self.add(name, "AAAA", AAAA(address))

    def txt(self, name, text):
        data = text.encode()
        self.add(name, "TXT", TXT([data[i:i + 255] for i in range(0, len(data), 255)]))

    def __enter__(self):
        self.server.start_thread()
        return self

    def __exit__(self, *exc):
        self.server.stop()
