// MQTT.js over WebSocket against a running tern: connect (MQTT 5),
// subscribe, publish, receive, then print "ok". Usage: node ws_roundtrip.js URL
const mqtt = require('mqtt');
const url = process.argv[2];
const client = mqtt.connect(url, { protocolVersion: 5, connectTimeout: 5000, reconnectPeriod: 0 });
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
