#!/usr/bin/env node
// mqttjs_ws.js - MQTT.js (npm mqtt 5, pinned by tests/interop/package-lock.json) over
// WebSocket and secure WebSocket, run by node_run.py (WS_PORT, WSS_PORT, CA_FILE).
//
// For each of ws:// and wss:// (the server certificate verified against CA_FILE) and
// MQTT 3.1.1 and 5.0: a subscriber and a publisher connect on /mqtt, the subscriber
// subscribes at QoS 1 and receives, exactly and in order, QoS 1 messages of 0 B, 10 B,
// 70 KB and 200 KB (the big ones span many WebSocket frames and TLS records). Every wait
// is bounded (WAIT_MS). Prints "N passed, N failed"; exits 1 on any failure.
'use strict'

let mqtt
try {
  mqtt = require('mqtt')
} catch (e) {
  console.log('FAIL: the npm package mqtt is not installed (NODE_PATH=' + process.env.NODE_PATH +
              '): ' + e.message)
  process.exit(1)
}
const fs = require('node:fs')

const WAIT_MS = 5000
const SIZES = [0, 10, 70000, 200000]

function withTimeout (promise, what) {
  let timer
  const t = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error('timed out: ' + what)), WAIT_MS)
  })
  return Promise.race([promise, t]).finally(() => clearTimeout(timer))
}

function connect (url, id, version, ca) {
  const opts = { clientId: id, protocolVersion: version, reconnectPeriod: 0, connectTimeout: WAIT_MS }
  if (ca) opts.ca = ca
  const c = mqtt.connect(url, opts)
  return withTimeout(new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c))
    c.once('error', reject)
  }), 'CONNACK from ' + url)
}

async function roundtrip (url, version, ca) {
  const tag = url.split(':')[0] + version
  const sub = await connect(url, 'js-sub-' + tag, version, ca)
  const pub = await connect(url, 'js-pub-' + tag, version, ca)
  try {
    const got = []
    const all = new Promise(resolve => {
      sub.on('message', (topic, payload) => {
        got.push([topic, Buffer.from(payload)])
        if (got.length === SIZES.length) resolve()
      })
    })
    await withTimeout(sub.subscribeAsync('js/' + tag + '/#', { qos: 1 }), 'SUBACK')
    for (let i = 0; i < SIZES.length; i++) {
      await withTimeout(pub.publishAsync('js/' + tag + '/' + i, Buffer.alloc(SIZES[i], i + 1),
        { qos: 1 }), 'PUBACK')
    }
    await withTimeout(all, SIZES.length + ' messages')
    for (let i = 0; i < SIZES.length; i++) {
      if (got[i][0] !== 'js/' + tag + '/' + i || !got[i][1].equals(Buffer.alloc(SIZES[i], i + 1))) {
        throw new Error('message ' + i + ' differs: topic ' + got[i][0] + ', ' + got[i][1].length + ' B')
      }
    }
  } finally {
    await Promise.all([sub.endAsync(), pub.endAsync()])
  }
}

async function main () {
  const ca = fs.readFileSync(process.env.CA_FILE)
  const cases = [
    ['ws_v311', 'ws://localhost:' + process.env.WS_PORT + '/mqtt', 4, null],
    ['ws_v5', 'ws://localhost:' + process.env.WS_PORT + '/mqtt', 5, null],
    ['wss_v311', 'wss://localhost:' + process.env.WSS_PORT + '/mqtt', 4, ca],
    ['wss_v5', 'wss://localhost:' + process.env.WSS_PORT + '/mqtt', 5, ca]
  ]
  let passed = 0
  let failed = 0
  for (const [name, url, version, caFile] of cases) {
    try {
      await roundtrip(url, version, caFile)
      console.log('PASS mqttjs/' + name)
      passed++
    } catch (e) {
      console.log('FAIL mqttjs/' + name + ': ' + e.message)
      failed++
    }
  }
  console.log(passed + ' passed, ' + failed + ' failed')
  process.exit(failed === 0 ? 0 : 1)
}

main()
