// Peer sender: nodemailer with a pool of persistent connections
// (pool: true, maxConnections, no per-connection message limit), STARTTLS
// required (requireTLS), the certificate verified against the given CA and
// the name 'localhost'. Sends raw messages until the deadline (or --count),
// keeping twice maxConnections sends in flight. Prints one JSON line.
'use strict';
const fs = require('fs');
const nodemailer = require('nodemailer');

const arg = (name, def) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
};
const port = Number(arg('port'));
const conns = Number(arg('connections', '64'));
const seconds = Number(arg('seconds', '10'));
const count = Number(arg('count', '0'));
const run = arg('run');
const body = fs.readFileSync(arg('body'));
const ca = fs.readFileSync(arg('ca'));

const transport = nodemailer.createTransport({
  host: '127.0.0.1', port, secure: false, requireTLS: true, name: 'bench.localhost',
  pool: true, maxConnections: conns, maxMessages: Infinity,
  tls: { ca: [ca], servername: 'localhost', rejectUnauthorized: true },
});

function head(i) {
  // the same 40-character Message-ID as bench/suite/common.py message_id()
  const id = (run.slice(0, 20).padEnd(20, ' ') + String(i).padStart(20, '0')).replace(/ /g, 'x');
  return Buffer.from('From: bench@example.org\r\nTo: rcpt@example.net\r\n' +
    'Subject: ringmail benchmark\r\nMessage-ID: <' + id + '@bench.example.org>\r\n' +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n');
}

const t0 = Date.now();
const deadline = t0 + seconds * 1000;
let next = 0, sent = 0, errors = 0, firstError = null, inflight = 0, finished = false;

function more() {
  return count ? next < count : Date.now() < deadline;
}

function pump() {
  while (inflight < 2 * conns && more() && !(errors && !sent && next > conns)) {
    const i = next++;
    inflight++;
    transport.sendMail({
      envelope: { from: 'bench@example.org', to: ['rcpt@example.net'] },
      raw: Buffer.concat([head(i), body]),
    }).then(() => { sent++; }, (e) => { errors++; firstError = firstError || String(e); })
      .finally(() => { inflight--; pump(); });
  }
  if (inflight === 0 && !finished) {
    finished = true;
    transport.close();
    console.log(JSON.stringify({ sent, errors, first_error: firstError,
                                 seconds: (Date.now() - t0) / 1000 }));
  }
}
pump();
