// MQTT.js in the browser against the broker named by the query string:
// ?ws=ws://HOST:PORT/PATH (required), v=4|5 (protocol level, default 4),
// topic=BASE (default browser/<time>). It publishes a retained message at
// QoS 1 to BASE/retained, subscribes to BASE/# at QoS 1, publishes BASE/q0
// at QoS 0 and BASE/q1 at QoS 1, and once three messages came back (or
// after 8 s) unsubscribes, clears the retained message and reports.
//
// The report is text, one item a line, POSTed to /result on the server
// that served this page and written into #status:
//   connected
//   message TOPIC QOS RETAIN PAYLOAD
//   error TEXT
(function () {
  'use strict';
  const query = new URLSearchParams(location.search);
  const url = query.get('ws');
  const version = Number(query.get('v') || '4');
  const base = query.get('topic') || 'browser/' + Date.now();
  const lines = [];
  let client = null;
  let reported = false;

  function report() {
    if (reported) return;
    reported = true;
    const text = lines.join('\n') + '\n';
    document.getElementById('status').textContent = text;
    fetch('/result', { method: 'POST', body: text })
      .catch(() => {})
      .finally(() => { if (client) client.end(true); });
  }

  function fail(what, e) {
    lines.push('error ' + what + ': ' + (e && e.message ? e.message : String(e)));
    report();
  }

  async function finish() {
    try {
      await client.unsubscribeAsync(base + '/#');
      await client.publishAsync(base + '/retained', '', { qos: 1, retain: true });
    } catch (e) {
      lines.push('error cleanup: ' + e.message);
    }
    report();
  }

  if (!url) {
    fail('query', 'no ws= in the query string');
    return;
  }
  setTimeout(() => fail('timeout', 'fewer than 3 messages in 8 s'), 8000);
  let received = 0;
  client = mqtt.connect(url, {
    protocolVersion: version,
    clientId: 'browser-v' + version + '-' + Math.random().toString(16).slice(2, 10),
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  client.on('error', (e) => fail('client', e));
  client.on('message', (topic, payload, packet) => {
    lines.push(['message', topic, packet.qos, packet.retain, payload.toString()].join(' '));
    received += 1;
    if (received === 3) finish();
  });
  client.on('connect', async () => {
    lines.push('connected');
    try {
      await client.publishAsync(base + '/retained', 'kept', { qos: 1, retain: true });
      await client.subscribeAsync(base + '/#', { qos: 1 });
      await client.publishAsync(base + '/q0', 'zero', { qos: 0 });
      await client.publishAsync(base + '/q1', 'one', { qos: 1 });
    } catch (e) {
      fail('publish/subscribe', e);
    }
  });
})();
