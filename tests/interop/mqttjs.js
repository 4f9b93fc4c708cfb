#!/usr/bin/env node
// mqttjs.js - MQTT 5 interop with MQTT.js (npm mqtt 5.x, protocolVersion 5).
//
// Run through broker_run.py (INTEROP_HOST/PORT/BROKER/TOPIC_ALIAS_MAX) with
// NODE_PATH pointing at the node_modules that `npm ci` installed from
// tests/interop/package-lock.json (CMake does that in the build directory).
// Every wait is bounded (WAIT_MS); a check that something does NOT arrive
// publishes a sentinel from another client and requires the sentinel alone.
// Cases:
//   connect          CONNECT v5 with session expiry, receive maximum, maximum
//                    packet size, topic alias maximum, user properties: CONNACK
//                    Success, session present 0, Topic Alias Maximum = the
//                    configured one.
//   properties       SUBSCRIBE with a subscription identifier; PUBLISH with every
//                    application property: packet.properties.userProperties
//                    (repeated key kept in order, non-ASCII), contentType,
//                    correlationData (binary), responseTopic, payloadFormatIndicator,
//                    messageExpiryInterval (remaining, 58..60) and the
//                    subscriptionIdentifier [MQTT-3.3.2-17] [MQTT-3.3.2-18]
//                    [MQTT-3.3.4-3].
//   topic_alias_in   aliases set by the client, by hand (set, use with an empty
//                    topic, remap) and by MQTT.js's autoAssignTopicAlias within
//                    the server's maximum: the subscriber sees real topics
//                    [MQTT-3.3.2-12].
//   topic_alias_bad  a PUBLISH with an alias above the server's maximum gets
//                    DISCONNECT 0x94 Topic alias invalid and the connection ends.
//   topic_alias_out  a subscriber advertising topicAliasMaximum 2 receives 6
//                    messages on 3 topics: every topic resolves to the real one,
//                    no alias above 2 [MQTT-3.3.2-10]; (ringmq only) aliases are
//                    actually used (some PUBLISH arrive with an empty topic).
//   shared           $share/js/... with two members and a subscription identifier:
//                    each of 20 messages to exactly one member, both get some, the
//                    identifier delivered [MQTT-4.8.2].
//   max_packet_size  a client with Maximum Packet Size 512 is not sent a larger
//                    message, but is sent the small one after it [MQTT-3.1.2-24].
//   receive_maximum  (raw client from mqtt-packet, MQTT.js's codec, as MQTT.js
//                    itself stalls on a held acknowledgement) Receive Maximum 2,
//                    acks held: only 2 of 5 QoS 1 messages arrive unacknowledged;
//                    acking releases the rest, 5 in all [MQTT-3.3.4-9].
'use strict'

let mqtt, mqttPacket
try {
  mqtt = require('mqtt')
  mqttPacket = require('mqtt-packet')
} catch (e) {
  console.log('FAIL: the npm package mqtt is not installed (npm ci in tests/interop, which CMake ' +
              'runs; NODE_PATH=' + process.env.NODE_PATH + '): ' + e.message)
  process.exit(1)
}
const assert = require('node:assert')
const net = require('node:net')

const WAIT_MS = 5000
const GRACE_MS = 300
const HOST = process.env.INTEROP_HOST || '127.0.0.1'
const PORT = Number(process.env.INTEROP_PORT)
const BROKER = process.env.INTEROP_BROKER || 'ringmq'
const ALIAS_MAX = Number(process.env.INTEROP_TOPIC_ALIAS_MAX || '7')
const TAG = String(process.pid)
let uidN = 0

if (!PORT) {
  console.error('INTEROP_PORT is not set: run this driver through broker_run.py')
  process.exit(2)
}

const topic = (name) => `interop/js/${TAG}/${name}`
const uid = (name) => `interop-js-${TAG}-${name}-${++uidN}`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class SkipCase extends Error {}

// ------------------------------------------------------------------ checks

class Checks {
  constructor () {
    this.caseName = ''
    this.caseFailed = false
    this.results = []
    this.checks = 0
  }

  fail (what, detail) {
    this.caseFailed = true
    console.log(`FAIL mqttjs/${this.caseName}: ${what}: ${detail}`)
  }

  eq (what, got, want) {
    this.checks++
    try {
      assert.deepStrictEqual(got, want)
      return true
    } catch (e) {
      this.fail(what, `got ${show(got)}, want ${show(want)}`)
      return false
    }
  }

  true (what, cond, detail) {
    this.checks++
    if (!cond) this.fail(what, detail || 'condition false')
    return !!cond
  }

  within (what, got, lo, hi) {
    this.checks++
    if (typeof got !== 'number' || got < lo || got > hi) {
      this.fail(what, `got ${show(got)}, want ${lo}..${hi}`)
      return false
    }
    return true
  }

  ringmqOnly (why) {
    if (BROKER !== 'ringmq') throw new SkipCase('ringmq only: ' + why)
  }

  async run (name, fn) {
    this.caseName = name
    this.caseFailed = false
    const t0 = Date.now()
    let status = null
    let note = ''
    const cs = new Clients()
    try {
      await fn(this, cs)
    } catch (e) {
      if (e instanceof SkipCase) {
        status = 'SKIP'
        note = e.message
      } else {
        this.fail('exception', e && e.stack ? e.stack : String(e))
      }
    } finally {
      await cs.closeAll()
    }
    if (this.caseFailed) status = 'FAIL'
    if (status === null) status = 'PASS'
    this.results.push(status)
    console.log(`${status} mqttjs/${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)` +
                (note ? ' - ' + note : ''))
  }

  finish () {
    const n = (s) => this.results.filter((r) => r === s).length
    console.log(`mqttjs against ${BROKER}: ${n('PASS')} passed, ${n('FAIL')} failed, ` +
                `${n('SKIP')} skipped (${this.checks} checks)`)
    return n('FAIL') ? 1 : 0
  }
}

function show (v) {
  if (Buffer.isBuffer(v)) return `<Buffer ${v.toString('hex')}>`
  try {
    return JSON.stringify(v, (k, x) => (x && x.type === 'Buffer' && Array.isArray(x.data))
      ? `<Buffer ${Buffer.from(x.data).toString('hex')}>` : x)
  } catch (e) {
    return String(v)
  }
}

function withTimeout (promise, what, ms = WAIT_MS) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

// ----------------------------------------------------------------- clients

// One MQTT.js client: messages collected with their packets; raw packets seen
// ('packetreceive', before MQTT.js resolves topic aliases) kept as copies.
class Client {
  constructor (name, opts = {}) {
    this.name = name
    this.msgs = []
    this.raw = []
    this.waiters = []
    this.disconnectPacket = null
    this.closed = false
    this.connack = null
    this.c = mqtt.connect(`mqtt://${HOST}:${PORT}`, {
      protocolVersion: 5,
      clientId: opts.clientId || uid(name),
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: WAIT_MS,
      keepalive: 30,
      ...opts
    })
    this.c.on('message', (t, payload, packet) => {
      this.msgs.push({ topic: t, payload: Buffer.from(payload), packet })
      this._wake()
    })
    this.c.on('packetreceive', (p) => {
      if (p.cmd === 'publish') {
        this.raw.push({ topic: String(p.topic), alias: p.properties && p.properties.topicAlias })
      }
    })
    this.c.on('disconnect', (p) => { this.disconnectPacket = p; this._wake() })
    this.c.on('close', () => { this.closed = true; this._wake() })
    this.c.on('error', (e) => { this.error = e; this._wake() })
  }

  _wake () {
    for (const w of this.waiters.splice(0)) w()
  }

  // Resolve when pred() holds; false after @ms.
  async until (pred, ms = WAIT_MS) {
    const deadline = Date.now() + ms
    while (!pred()) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(t); resolve() })
      })
    }
    return true
  }

  connected () {
    return withTimeout(new Promise((resolve, reject) => {
      this.c.once('connect', (connack) => { this.connack = connack; resolve(connack) })
      this.c.once('error', reject)
      this.c.once('close', () => reject(new Error(`${this.name}: closed before CONNACK`)))
    }), `${this.name}: CONNACK`)
  }

  // SUBSCRIBE; returns the SUBACK reason codes (MQTT.js's granted array).
  subscribe (filter, opts) {
    return withTimeout(new Promise((resolve, reject) => {
      this.c.subscribe(filter, opts, (err, granted, packet) => {
        if (packet && packet.granted) return resolve(packet.granted)
        if (err) return reject(err)
        resolve(granted.map((g) => g.qos))
      })
    }), `${this.name}: SUBACK`)
  }

  publish (t, payload, opts = {}) {
    return withTimeout(new Promise((resolve, reject) => {
      this.c.publish(t, payload, { qos: 1, ...opts }, (err) => err ? reject(err) : resolve())
    }), `${this.name}: publish acknowledgement`)
  }

  // Wait for @n messages in all (bounded), then GRACE_MS for extras.
  async waitMsgs (n, ms = WAIT_MS) {
    if (await this.until(() => this.msgs.length >= n, ms)) await sleep(GRACE_MS)
    return this.msgs
  }

  end () {
    if (this.closed) return Promise.resolve()
    return withTimeout(new Promise((resolve) => this.c.end(false, {}, resolve)),
      `${this.name}: end`).catch(() => this.c.end(true))
  }
}

class Clients {
  constructor () { this.all = [] }

  async connect (name, opts = {}) {
    const cl = new Client(name, opts)
    this.all.push(cl)
    const connack = await cl.connected()
    if (connack.reasonCode) throw new Error(`${name}: CONNACK reason code ${connack.reasonCode}`)
    return cl
  }

  async closeAll () {
    await Promise.all(this.all.map((cl) => cl.end().catch(() => {})))
  }
}

const payloads = (msgs) => msgs.map((m) => m.payload.toString())

async function sentinelOnly (c, what, sub, pub, t) {
  const s = 'sentinel-' + uid('s')
  await pub.publish(t, s)
  c.eq(what + ': payloads', payloads(await sub.waitMsgs(1)), [s])
}

// ------------------------------------------------------------------- cases

async function caseConnect (c, cs) {
  const cl = new Client('connect', {
    properties: {
      sessionExpiryInterval: 30,
      receiveMaximum: 10,
      maximumPacketSize: 1 << 20,
      topicAliasMaximum: 3,
      requestProblemInformation: true,
      userProperties: { client: 'mqtt.js', lang: ['js', 'node'] }
    }
  })
  cs.all.push(cl)
  const ack = await cl.connected()
  c.eq('CONNACK reason code', ack.reasonCode, 0)
  c.eq('CONNACK session present', ack.sessionPresent, false)
  c.eq('CONNACK Topic Alias Maximum', ack.properties && ack.properties.topicAliasMaximum,
    ALIAS_MAX)
}

async function caseProperties (c, cs) {
  const sub = await cs.connect('props-sub')
  const pub = await cs.connect('props-pub')
  c.eq('SUBACK', await sub.subscribe(topic('props/#'),
    { qos: 1, properties: { subscriptionIdentifier: 12345 } }), [1])
  const userProperties = { first: 'a', rep: ['r1', 'r2', 'r3'], 'ünï': 'cödé ✓', empty: '' }
  const corr = Buffer.from([0, 1, 2, 0xfe, 0xff])
  await pub.publish(topic('props/x'), Buffer.from('{"v":5}'), {
    qos: 1,
    properties: {
      payloadFormatIndicator: true,
      messageExpiryInterval: 60,
      contentType: 'application/json',
      responseTopic: topic('reply'),
      correlationData: corr,
      userProperties
    }
  })
  const msgs = await sub.waitMsgs(1)
  c.eq('messages (topic, payload)', msgs.map((m) => [m.topic, m.payload.toString()]),
    [[topic('props/x'), '{"v":5}']])
  if (msgs.length < 1) return
  const p = msgs[0].packet.properties || {}
  c.eq('qos', msgs[0].packet.qos, 1)
  // MQTT.js gives an object (null prototype): keys in arrival order, a
  // repeated key's values as an array in order.
  c.eq('userProperties, in order', Object.entries(p.userProperties || {}),
    Object.entries(userProperties))
  c.eq('contentType', p.contentType, 'application/json')
  c.eq('correlationData', Buffer.isBuffer(p.correlationData) ? p.correlationData : null, corr)
  c.eq('responseTopic', p.responseTopic, topic('reply'))
  c.eq('payloadFormatIndicator', p.payloadFormatIndicator, true)
  c.within('messageExpiryInterval (remaining)', p.messageExpiryInterval, 58, 60)
  c.eq('subscriptionIdentifier', p.subscriptionIdentifier, 12345)
  c.eq('no topicAlias to a client without a Topic Alias Maximum', p.topicAlias, undefined)
}

async function caseTopicAliasIn (c, cs) {
  const sub = await cs.connect('alias-sub')
  const pub = await cs.connect('alias-pub')
  c.eq('SUBACK', await sub.subscribe(topic('alias/#'), { qos: 1 }), [1])
  const [t1, t2] = [topic('alias/one'), topic('alias/two')]
  await pub.publish(t1, 'h1', { properties: { topicAlias: 1 } })
  await pub.publish('', 'h2', { properties: { topicAlias: 1 } })
  await pub.publish(t2, 'h3', { properties: { topicAlias: 1 } })
  await pub.publish('', 'h4', { properties: { topicAlias: 1 } })
  await pub.publish(t1, 'h5', { properties: { topicAlias: ALIAS_MAX } })
  await pub.publish('', 'h6', { properties: { topicAlias: ALIAS_MAX } })
  // MQTT.js assigns aliases itself (LRU) within the server's maximum.
  const auto = await cs.connect('alias-auto', { autoAssignTopicAlias: true })
  for (let i = 0; i < 4; i++) await auto.publish(i % 2 ? t2 : t1, 'auto' + i)
  const msgs = await sub.waitMsgs(10)
  c.eq('topics and payloads', msgs.map((m) => [m.topic, m.payload.toString()]),
    [[t1, 'h1'], [t1, 'h2'], [t2, 'h3'], [t2, 'h4'], [t1, 'h5'], [t1, 'h6'],
      [t1, 'auto0'], [t2, 'auto1'], [t1, 'auto2'], [t2, 'auto3']])
}

async function caseTopicAliasBad (c, cs) {
  const sub = await cs.connect('badalias-sub')
  const pub = await cs.connect('badalias-pub')
  const t = topic('badalias')
  c.eq('SUBACK', await sub.subscribe(t, { qos: 1 }), [1])
  const bad = await cs.connect('badalias')
  // MQTT.js refuses to send this itself: write the packet with its codec.
  bad.c.stream.write(mqttPacket.generate({
    cmd: 'publish', topic: t, payload: Buffer.from('bad'), qos: 0, retain: false, dup: false,
    properties: { topicAlias: ALIAS_MAX + 1 }
  }, { protocolVersion: 5 }))
  c.true('connection closed', await bad.until(() => bad.closed),
    `still open ${WAIT_MS} ms after Topic Alias ${ALIAS_MAX + 1} > ${ALIAS_MAX}`)
  c.eq('DISCONNECT reason code', bad.disconnectPacket && bad.disconnectPacket.reasonCode, 0x94)
  await sentinelOnly(c, 'the bad PUBLISH is not delivered', sub, pub, t)
}

async function caseTopicAliasOut (c, cs) {
  const sub = await cs.connect('aliasout-sub', { properties: { topicAliasMaximum: 2 } })
  const pub = await cs.connect('aliasout-pub')
  c.eq('SUBACK', await sub.subscribe(topic('aliasout/#'), { qos: 1 }), [1])
  const order = ['a', 'b', 'a', 'c', 'a', 'b']
  for (let i = 0; i < order.length; i++) await pub.publish(topic('aliasout/' + order[i]), 'o' + i)
  const msgs = await sub.waitMsgs(order.length)
  c.eq('topics resolved', msgs.map((m) => [m.topic, m.payload.toString()]),
    order.map((x, i) => [topic('aliasout/' + x), 'o' + i]))
  const aliases = sub.raw.map((r) => r.alias).filter((a) => a !== undefined)
  c.true('aliases within the client maximum 2', aliases.every((a) => a >= 1 && a <= 2),
    `aliases ${show(aliases)}`)
  c.eq('client still connected', sub.closed, false)
  c.ringmqOnly('mosquitto 2.0 does not assign outbound topic aliases')
  c.true('aliases used (PUBLISH with an empty topic)', sub.raw.some((r) => r.topic === ''),
    `raw topics ${show(sub.raw)}`)
}

async function caseShared (c, cs) {
  const n = 20
  const members = [await cs.connect('shared-m1'), await cs.connect('shared-m2')]
  const pub = await cs.connect('shared-pub')
  for (const m of members) {
    c.eq('member SUBACK', await m.subscribe('$share/js/' + topic('shared/#'),
      { qos: 1, properties: { subscriptionIdentifier: 77 } }), [1])
  }
  const want = []
  for (let i = 0; i < n; i++) {
    want.push('m' + String(i).padStart(2, '0'))
    await pub.publish(topic('shared/' + i), want[i])
  }
  const total = () => members.reduce((s, m) => s + m.msgs.length, 0)
  const deadline = Date.now() + WAIT_MS
  while (total() < n && Date.now() < deadline) await sleep(20)
  await sleep(GRACE_MS)
  const got = members.flatMap((m) => payloads(m.msgs)).sort()
  c.eq('each message to exactly one member', got, want)
  const counts = members.map((m) => m.msgs.length)
  c.true('both members get some', Math.min(...counts) > 0, `per-member counts ${show(counts)}`)
  const ids = members.flatMap((m) => m.msgs.map((x) => x.packet.properties &&
    x.packet.properties.subscriptionIdentifier))
  c.true('subscription identifier 77 on every delivery', ids.every((i) => i === 77),
    `identifiers ${show(ids)}`)
}

async function caseMaxPacketSize (c, cs) {
  const sub = await cs.connect('mps-sub', { properties: { maximumPacketSize: 512 } })
  const pub = await cs.connect('mps-pub')
  const t = topic('mps')
  c.eq('SUBACK', await sub.subscribe(t, { qos: 1 }), [1])
  await pub.publish(t, Buffer.alloc(1000, 0x61))
  await pub.publish(t, 'small')
  c.eq('only the message that fits arrives', payloads(await sub.waitMsgs(1)), ['small'])
  c.eq('client still connected', sub.closed, false)
}

// A bare v5 client on mqtt-packet: sends what it is told, records what comes.
function rawClient (clientId, properties) {
  const sock = net.connect(PORT, HOST)
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  const rc = { sock, packets: [], waiters: [], closed: false }
  const wake = () => { for (const w of rc.waiters.splice(0)) w() }
  parser.on('packet', (p) => { rc.packets.push(p); wake() })
  parser.on('error', (e) => { rc.error = e; wake() })
  sock.on('data', (d) => parser.parse(d))
  sock.on('close', () => { rc.closed = true; wake() })
  sock.on('error', () => {})
  rc.send = (p) => sock.write(mqttPacket.generate(p, { protocolVersion: 5 }))
  rc.until = async (pred, ms = WAIT_MS) => {
    const deadline = Date.now() + ms
    while (!pred()) {
      const left = deadline - Date.now()
      if (left <= 0 || rc.closed) return pred()
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left)
        rc.waiters.push(() => { clearTimeout(t); resolve() })
      })
    }
    return true
  }
  rc.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 30,
    clientId, properties })
  return rc
}

async function caseReceiveMaximum (c, cs) {
  const t = topic('recvmax')
  const raw = rawClient(uid('recvmax'), { receiveMaximum: 2 })
  try {
    c.true('CONNACK', await raw.until(() => raw.packets.some((p) => p.cmd === 'connack')),
      'no CONNACK')
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: t, qos: 1 }] })
    c.true('SUBACK', await raw.until(() => raw.packets.some((p) => p.cmd === 'suback')),
      'no SUBACK')
    const pub = await cs.connect('recvmax-pub')
    for (let i = 0; i < 5; i++) await pub.publish(t, 'r' + i)
    const pubs = () => raw.packets.filter((p) => p.cmd === 'publish')
    await raw.until(() => pubs().length >= 3, 1000)
    c.eq('unacknowledged QoS 1 in flight with Receive Maximum 2', pubs().map((p) =>
      p.payload.toString()), ['r0', 'r1'])
    for (let acked = 0; acked < 5; acked++) {
      if (!(await raw.until(() => pubs().length > acked))) break
      raw.send({ cmd: 'puback', messageId: pubs()[acked].messageId, reasonCode: 0 })
    }
    await sleep(GRACE_MS)
    c.eq('all 5 after acknowledging', pubs().map((p) => p.payload.toString()),
      ['r0', 'r1', 'r2', 'r3', 'r4'])
  } finally {
    raw.sock.destroy()
  }
}

const CASES = {
  connect: caseConnect,
  properties: caseProperties,
  topic_alias_in: caseTopicAliasIn,
  topic_alias_bad: caseTopicAliasBad,
  topic_alias_out: caseTopicAliasOut,
  shared: caseShared,
  max_packet_size: caseMaxPacketSize,
  receive_maximum: caseReceiveMaximum
}

async function main () {
  const c = new Checks()
  const only = process.argv.slice(2)
  for (const [name, fn] of Object.entries(CASES)) {
    if (only.length === 0 || only.includes(name)) await c.run(name, fn)
  }
  return c.finish()
}

main().then((rc) => process.exit(rc), (e) => {
  console.log('FAIL mqttjs: ' + (e && e.stack ? e.stack : e))
  process.exit(1)
})
