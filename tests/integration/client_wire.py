"""What a mail client may send before TLS protects it, checked over the
whole of one recorded connection (harness.RecordingProxy records it).

Before TLS: only EHLO/HELO (with an argument), STARTTLS and QUIT, each a
CRLF-terminated line (case-insensitive), one at a time. NOOP, RSET and the
rest are refused too: nothing needs them before the handshake, and a client
that sends them there would send others.
After STARTTLS: if the server answered 220, the next octets are a TLS
handshake record holding a ClientHello, and every octet after it is framed
as TLS records to the end of the connection; otherwise (454, 502, 250,
garbage, or no answer) at most QUIT, and then nothing.
Implicit TLS (port 465): the stream is TLS records from its first octet.
The framing check cannot see whether a record is encrypted; it proves that
no SMTP command line crossed outside one.
"""
import re

PLAIN_VERBS = (b"EHLO", b"HELO", b"STARTTLS", b"QUIT")
MAX_LINE = 512  # RFC 5321 4.5.3.1.4, CRLF included
TLS_TYPES = (20, 21, 22, 23)  # change_cipher_spec, alert, handshake, application_data
TLS_MAX_RECORD = 16384 + 2048  # RFC 5246 6.2.3: the largest ciphertext
STARTTLS_ACCEPTED = re.compile(rb"220(?:[ -]|\r\n)")


def show(b, n=60):
    return repr(b[:n]) + ("..." if len(b) > n else "")


class Recording:
    """One connection's octets in the order the proxy saw them. The proxy
    logs server octets before it forwards them, so a client octet that
    answers a reply is always logged after that reply."""

    def __init__(self, events):
        client, server, self.chunks = bytearray(), bytearray(), []
        for who, data in events:
            if who == "c":
                self.chunks.append((len(client), len(server)))
                client += data
            else:
                server += data
        self.client, self.server = bytes(client), bytes(server)

    def chunk_start(self, off):
        """Where the received chunk holding client octet off began."""
        start = 0
        for s, _ in self.chunks:
            if s > off:
                break
            start = s
        return start

    def server_before(self, off):
        """How many server octets the proxy had seen before client octet off."""
        seen = 0
        for s, n in self.chunks:
            if s > off:
                break
            seen = n
        return seen


def check(events, implicit=False):
    """events: [(who, bytes)], who "c" (client to server) or "s". Returns
    (the octets sent before TLS, [violations]); an empty list is a pass."""
    r = Recording(events)
    data = r.client
    if implicit:
        return b"", tls_records(data, 0)
    pos = 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return data, ["unterminated plaintext at octet %d: %s" % (pos, show(data[pos:]))]
        line, nxt = data[pos:eol], eol + 2
        upper = line.upper()
        verb = upper.split(b" ", 1)[0]
        if b"\r" in line or b"\n" in line:
            return data, ["bare CR or LF in a plaintext line: %s" % show(line)]
        if nxt - pos > MAX_LINE:
            return data, ["plaintext line of %d octets (at most %d)" % (nxt - pos, MAX_LINE)]
        well_formed = (upper in (b"STARTTLS", b"QUIT") or
                       (verb in (b"EHLO", b"HELO") and len(line.split()) == 2))
        if not well_formed:
            return data, ["plaintext command %s: before TLS only EHLO/HELO, STARTTLS and QUIT "
                          "may be sent" % show(line)]
        if upper == b"QUIT":
            if nxt < len(data):
                return data, ["%d octets after QUIT: %s" % (len(data) - nxt, show(data[nxt:]))]
            return data, []
        if upper == b"STARTTLS":
            if nxt == len(data):
                return data, []
            if r.chunk_start(nxt) < nxt:
                return data, ["%s sent after STARTTLS without waiting for its reply"
                              % show(data[nxt:])]
            reply = r.server[r.server_before(nxt - 1):r.server_before(nxt)]
            if STARTTLS_ACCEPTED.match(reply):
                return data[:nxt], tls_records(data, nxt)
            rest = data[nxt:]
            if rest.upper() == b"QUIT\r\n":
                return data, []
            if rest[:6].upper() == b"QUIT\r\n":
                return data, ["%d octets after QUIT: %s" % (len(rest) - 6, show(rest[6:]))]
            return data, ["after the refused STARTTLS (reply %s) only QUIT may follow, the "
                          "client sent %s" % (show(reply), show(data[nxt:]))]
        pos = nxt
    return data, []


def tls_records(data, pos):
    """Violations in data[pos:], which must be TLS records, the first a
    ClientHello. A last record cut short by the end of the connection
    passes: its header is TLS and what follows is inside it."""
    first = True
    while pos < len(data):
        h = data[pos:pos + 5]
        ctype, major = h[0], h[1] if len(h) > 1 else 3
        minor = h[2] if len(h) > 2 else 0
        length = int.from_bytes(h[3:5], "big") if len(h) == 5 else 1
        if ctype not in TLS_TYPES or major != 3 or minor > 4 or not 0 < length <= TLS_MAX_RECORD:
            return ["octet %d is not a TLS record header: %s" % (pos, show(data[pos:]))]
        if first:
            body = data[pos + 5:pos + 6]
            if ctype != 22 or (body and body[0] != 1):
                return ["the first TLS record is not a ClientHello (type %d, handshake %s): %s"
                        % (ctype, body[0] if body else "?", show(data[pos:]))]
            first = False
        pos += 5 + length
    return []
