// MQTT.js over WebSocket against a running tern: connect (MQTT 5),
// subscribe, publish, receive, then print "ok".
// Usage: node ws_roundtrip.js URL [CA_FILE]
// With a wss:// URL, CA_FILE is the PEM CA the broker's certificate must
// chain to (it replaces Node's default trust store; verification stays on).
const fs = require('fs');
const mqtt = require('mqtt');
const url = process.argv[2];
const caFile = process.argv[3];
const opts = { protocolVersion: 5, connectTimeout: 5000, reconnectPeriod: 0 };
if (caFile) {
  opts.ca = fs.readFileSync(caFile);
  opts.rejectUnauthorized = true;
  // The test broker listens on 127.0.0.1 only; "localhost" may resolve to ::1 first.
  opts.wsOptions = { family: 4 };
}
const client = mqtt.connect(url, opts);
let done = false;
const fail = (why) => { if (done) return; console.error(why); process.exit(1); };
setTimeout(() => fail('timeout'), 8000);
client.on('error', (e) => fail('error: ' + e.message));
client.on('connect', () => {
  client.subscribe('js/#', { qos: 1 }, (err) => {
    if (err) fail('subscribe: ' + err.message);
    client.publish('js/hello', 'from mqtt.js', { qos: 1 });
  });
});
client.on('message', (topic, payload) => {
  if (topic === 'js/hello' && payload.toString() === 'from mqtt.js') {
    // Whatever the socket says while closing no longer matters.
    done = true;
    console.log('ok');
    client.end(false, () => process.exit(0));
    setTimeout(() => process.exit(0), 1000);
  }
});
