// Preloaded with `node -r` for the 'nodemailer-nodelay' peer: every socket
// gets TCP_NODELAY. nodemailer leaves Nagle on, and on loopback its small
// writes (the end of DATA after the body) then wait for the receiver's
// delayed ACK; this variant shows nodemailer without that stall.
'use strict';
const net = require('net');
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  this.setNoDelay(true);
  return connect.apply(this, args);
};
