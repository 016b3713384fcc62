// Self-checks of canonical.js beyond docs/examples/request-vectors.json:
//   node --test canonical.test.js
// Random inputs use a seeded generator, so a failure reproduces.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const c = require('./canonical.js');

const vectorsFile = path.join(__dirname, '..', '..', '..', 'docs', 'examples', 'request-vectors.json');
const vectors = c.parseJSON(fs.readFileSync(vectorsFile, 'utf8'));
const reg = new c.Registry(vectors.descriptors);
const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (h) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

// xorshift128+, seeded: reproducible random bits
function rng(seed) {
  let s0 = BigInt(seed) | 1n;
  let s1 = 0x9e3779b97f4a7c15n;
  const next = () => {
    let x = s0;
    const y = s1;
    s0 = y;
    x = BigInt.asUintN(64, x ^ (x << 23n));
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return BigInt.asUintN(64, s1 + y);
  };
  return {
    u64: next,
    u32: () => Number(next() >> 32n),
    int: (n) => Number(next() % BigInt(n)),
  };
}

const dv = new DataView(new ArrayBuffer(8));
const f64 = (bits) => { dv.setBigUint64(0, bits); return dv.getFloat64(0); };
const f32 = (bits) => { dv.setUint32(0, bits); return dv.getFloat32(0); };

function refusal(fn) {
  try {
    fn();
  } catch (err) {
    if (err instanceof c.RequestError) return `${err.reason} ${err.field}`;
    throw err;
  }
  return 'accepted';
}

test('§13.5.1 doubles: String(x) except −0', () => {
  const r = rng(1);
  const special = [0x0000000000000001n, 0x000fffffffffffffn, 0x0010000000000000n, 0x7fefffffffffffffn, 0x3ff0000000000000n];
  for (let e = 1n; e < 2047n; e++) special.push(e << 52n); // powers of two: the narrower interval below
  const all = [...special, ...Array.from({ length: 20000 }, () => r.u64())];
  for (const bits of all) {
    for (const x of [f64(bits), -f64(bits)]) {
      if (Number.isNaN(x)) continue;
      assert.equal(c.formatFloat(x, 64), Object.is(x, -0) ? '-0' : String(x), `bits ${bits.toString(16)}`);
    }
  }
  for (const x of [1e21, 1e-7, 123456789012345680000, 0.000001, 5e-324, -1.5e-7, 1.7976931348623157e308]) {
    assert.equal(c.formatFloat(x, 64), String(x));
  }
  assert.equal(c.formatFloat(-0, 64), '-0');
  assert.equal(c.formatFloat(NaN, 64), 'NaN');
  assert.equal(c.formatFloat(-Infinity, 64), '-Infinity');
});

test('§13.5.1 floats: the shortest binary32 digits, read back exactly', () => {
  const cases = [[0.1, '0.1'], [16777216, '16777216'], [3.4028234663852886e38, '3.4028235e+38'],
    [1.401298464324817e-45, '1e-45'], [1.1, '1.1'], [1e-7, '1e-7'], [123456789, '123456790'],
    [1e21, '1e+21'], [1e20, '100000000000000000000'], [0.25, '0.25'], [-2.5, '-2.5'], [1 / 3, '0.33333334']];
  for (const [x, want] of cases) assert.equal(c.formatFloat(Math.fround(x), 32), want, `${x}`);
  assert.throws(() => c.formatFloat(0.1, 32), RangeError); // not a binary32 value
  const r = rng(2);
  const all = [1, 0x7fffff, 0x800000, 0x7f7fffff];
  for (let e = 1; e < 255; e++) all.push(e << 23);
  for (let i = 0; i < 20000; i++) all.push(r.u32());
  for (const bits of all) {
    const x = Math.abs(f32(bits));
    if (Number.isNaN(x) || x === Infinity || x === 0) continue;
    const s = c.formatFloat(x, 32);
    assert.equal(c.decimalToFloat(s, 32), x, `${s} does not read back as ${x}`);
    // fewest digits: no decimal of one digit less reads back as x
    const m = /^([0-9]+)(?:\.([0-9]+))?(?:e([+-][0-9]+))?$/.exec(s);
    const digits = (m[1] + (m[2] || '')).replace(/^0+/, '');
    const k = digits.replace(/0+$/, '').length;
    if (k > 1) {
      const exp = Number(m[3] || 0) - (m[2] || '').length + (digits.length - k); // s = digits[0..k) × 10^exp
      const shorter = BigInt(digits.slice(0, k - 1));
      for (const t of [shorter, shorter + 1n]) {
        assert.notEqual(c.decimalToFloat(`${t}e${exp + 1}`, 32), x, `${t}e${exp + 1} is shorter than ${s}`);
      }
    }
  }
});

test('decimal to binary32 rounds once, not through a double', () => {
  // 1 + 2^-24 + 2^-80: just above the midpoint between 1 and the next float.
  // As a double it is the midpoint, which a second rounding takes to 1.
  const num = (1n << 80n) + (1n << 56n) + 1n;
  const text = `${num * 5n ** 80n}e-80`;
  assert.equal(Math.fround(Number(text)), 1);
  assert.equal(c.decimalToFloat(text, 32), 1 + 2 ** -23);
  const msg = c.fromJSON(reg, 'request.v1.ScalarsRequest', c.parseJSON(`{"flt": ${text.replace('e', 'E')}}`));
  assert.equal(hex(c.canonical(msg)), '5d0100803f');
  // the midpoint between the largest float (odd) and 2^128 rounds to +∞, just below it to the largest
  assert.equal(c.decimalToFloat('340282356779733661637539395458142568448', 32), null);
  assert.equal(c.decimalToFloat('340282356779733661637539395458142568447.9', 32), 3.4028234663852886e38);
  assert.equal(c.decimalToFloat('7e-46', 32), 0); // half the smallest subnormal and less: to even, zero
  assert.equal(c.decimalToFloat('7.1e-46', 32), 1.401298464324817e-45);
});

test('strings: refused exactly when not RFC 3629 UTF-8', () => {
  const r = rng(3);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const pool = [0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90, 0x8f];
  for (let i = 0; i < 20000; i++) {
    const b = Uint8Array.from({ length: 1 + r.int(6) }, () => pool[r.int(pool.length)]);
    let valid = true;
    try { decoder.decode(b); } catch { valid = false; }
    const wire = Buffer.concat([Buffer.from([0x12, b.length]), b]); // TransferRequest.currency
    const got = refusal(() => c.parse(reg, 'request.v1.TransferRequest', wire));
    assert.equal(got, valid ? 'accepted' : 'REQUEST_INVALID currency', hex(b));
  }
  // a value built in JavaScript with a lone surrogate cannot be encoded
  const msg = c.fromJSON(reg, 'request.v1.CollectionsRequest', { tags: ['ok', 'a\ud800'] });
  assert.equal(refusal(() => c.canonical(msg)), 'REQUEST_INVALID tags[1]');
});

test('timestamps: the RFC 3339 text of §13.5 against Date', () => {
  const r = rng(4);
  for (let i = 0; i < 5000; i++) {
    const s = -62135596800 + r.int(253402300799 + 62135596800 + 1);
    const iso = new Date(s * 1000).toISOString().replace('.000Z', 'Z').replace(/^\+0*/, '');
    assert.equal(c.timestampText(BigInt(s), 0n), iso.length === 20 ? iso : iso.padStart(20, '0'));
  }
  assert.equal(c.timestampText(0n, 250000000n), '1970-01-01T00:00:00.25Z');
  assert.equal(c.timestampText(-1n, 1n), '1969-12-31T23:59:59.000000001Z');
  assert.equal(c.timestampText(-62135596801n, 0n), 'timestamp(-62135596801, 0)');
  assert.equal(c.timestampText(0n, -1n), 'timestamp(0, -1)');
  assert.equal(c.durationText(0n, -250000000n), '-0.25s');
  assert.equal(c.durationText(-315576000001n, 0n), 'duration(-315576000001, 0)');
  assert.equal(c.durationText(90n, 0n), '90s');
});

test('clean and show', () => {
  const clef = '\u{1d11e}';
  assert.equal(c.clean(clef.repeat(128)), clef.repeat(128));
  assert.equal(c.clean(clef.repeat(129)), `${clef.repeat(127)}\u2026`);
  assert.equal(c.clean('a\u202eb\u00adc\u{e0041}d\u{10fffd}e\u2028'), 'a\ufffdb\ufffdc\ufffdd\ufffde\ufffd');
  assert.equal(c.clean('\u00a0\u061b\u2065\ufffc\u{110be}'), '\u00a0\u061b\u2065\ufffc\u{110be}'); // not in the set
  assert.equal(c.show('plain text'), 'plain text');
  for (const v of ['', ' a', 'a ', '\u00a0a', 'a\u3000', '\u2007x', 'a,b', 'a:b', 'a"b', 'a\\b']) {
    assert.match(c.show(v), /^".*"$/s, JSON.stringify(v));
  }
  assert.equal(c.show('x\\"y'), '"x\\\\\\"y"');
  assert.equal(c.show('\u200bx'), '\u200bx'); // U+200B is not a space separator (clean replaces it first)
});

// mutate makes a variant of wire bytes: a flipped bit, a cut, a duplicated
// or inserted byte.
function mutate(r, b) {
  const out = Array.from(b);
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    const at = r.int(out.length + 1);
    switch (r.int(4)) {
      case 0: if (out.length) out[at % out.length] ^= 1 << r.int(8); break;
      case 1: out.length = at; break;
      case 2: out.splice(at, 0, r.int(256)); break;
      default: out.splice(at, 0, ...out.slice(at, at + 1 + r.int(8)));
    }
  }
  return Uint8Array.from(out);
}

test('reading is total and canonical(v) is a fixed point (mutated vector inputs)', () => {
  const r = rng(5);
  const seeds = [];
  for (const v of vectors.vectors) {
    seeds.push([v.type, unhex(v.canonical_hex)]);
    for (const input of v.inputs || []) seeds.push([v.type, unhex(input.wire_hex)]);
  }
  for (const x of vectors.refusals) seeds.push([x.type, unhex(x.wire_hex)]);
  let accepted = 0;
  for (let i = 0; i < 20000; i++) {
    const [type, seed] = seeds[r.int(seeds.length)];
    const b = mutate(r, seed);
    let msg;
    try {
      msg = c.parse(reg, type, b);
    } catch (err) {
      assert.ok(err instanceof c.RequestError, `${hex(b)}: ${err.stack}`);
      assert.ok([c.REQUEST_UNKNOWN_FIELD, c.REQUEST_INVALID].includes(err.reason));
      continue;
    }
    accepted++;
    const once = c.canonical(msg);
    const again = c.parse(reg, type, once);
    assert.equal(hex(c.canonical(again)), hex(once), `${type} ${hex(b)}`);
    assert.deepEqual(c.summarize(again), c.summarize(msg));
  }
  assert.ok(accepted > 1000, `only ${accepted} variants were read`);
});

// A proto2 file, an editions file and a proto3 file of our own, for what
// the vectors' descriptors do not have.
const extra = new c.Registry({
  file: [
    {
      name: 'x/two.proto', package: 'x',
      message_type: [
        {
          name: 'Two',
          field: [
            { name: 'levels', number: 1, label: 'LABEL_REPEATED', type: 'TYPE_ENUM', type_name: '.x.Level' },
            { name: 'by_id', number: 2, label: 'LABEL_REPEATED', type: 'TYPE_MESSAGE', type_name: '.x.Two.ByIdEntry' },
            { name: 'child', number: 3, label: 'LABEL_OPTIONAL', type: 'TYPE_MESSAGE', type_name: '.x.Two' },
            { name: 'req', number: 4, label: 'LABEL_REQUIRED', type: 'TYPE_INT32' },
          ],
          nested_type: [{
            name: 'ByIdEntry', options: { map_entry: true },
            field: [
              { name: 'key', number: 1, label: 'LABEL_OPTIONAL', type: 'TYPE_STRING' },
              { name: 'value', number: 2, label: 'LABEL_OPTIONAL', type: 'TYPE_MESSAGE', type_name: '.x.Two' },
            ],
          }],
        },
      ],
      enum_type: [{ name: 'Level', value: [{ name: 'LOW', number: 3 }, { name: 'HIGH', number: 4 }] }],
    },
    {
      name: 'x/ed.proto', package: 'x', syntax: 'editions', edition: 'EDITION_2023',
      options: { features: { field_presence: 'IMPLICIT' } },
      message_type: [{
        name: 'Ed',
        field: [
          { name: 'implicit', number: 1, label: 'LABEL_OPTIONAL', type: 'TYPE_INT32' },
          { name: 'explicit', number: 2, label: 'LABEL_OPTIONAL', type: 'TYPE_INT32', options: { features: { field_presence: 'EXPLICIT' } } },
          { name: 'delimited', number: 3, label: 'LABEL_OPTIONAL', type: 'TYPE_MESSAGE', type_name: '.x.Ed', options: { features: { message_encoding: 'DELIMITED' } } },
          { name: 'closed', number: 4, label: 'LABEL_OPTIONAL', type: 'TYPE_ENUM', type_name: '.x.Shut', options: { features: { field_presence: 'EXPLICIT' } } },
        ],
      }],
      enum_type: [{ name: 'Shut', options: { features: { enum_type: 'CLOSED' } }, value: [{ name: 'SHUT_ZERO', number: 0 }, { name: 'SHUT_ONE', number: 1 }] }],
    },
  ],
});

test('proto2 and editions: presence, closed enums, groups', () => {
  // proto2: a packed closed enum list with an undeclared number is refused at its element
  assert.equal(refusal(() => c.parse(extra, 'x.Two', unhex('0a 03 03 05 04'))), 'REQUEST_UNKNOWN_FIELD levels[1]');
  assert.equal(refusal(() => c.parse(extra, 'x.Two', unhex('08 04 08 02'))), 'REQUEST_UNKNOWN_FIELD levels[1]');
  // a proto2 enum list is written packed, and both forms read alike
  const two = c.parse(extra, 'x.Two', unhex('08 04 0a 01 03 20 00'));
  assert.equal(hex(c.canonical(two)), '0a020403' + '2000'); // required int32 set to 0: present
  assert.deepEqual(c.summarize(two, { display: { 'x.Two.levels': {}, 'x.Two.req': { label: 'r' } } }),
    [{ field: 'levels', label: 'levels', value: 'HIGH, LOW' }, { field: 'req', label: 'r', value: '0' }]);
  // a proto2 required field left unset is read (§13.6 does not refuse it); unset, it is not written
  assert.equal(hex(c.canonical(c.parse(extra, 'x.Two', unhex('08 03')))), '0a0103');
  // editions: IMPLICIT presence (zero not written), EXPLICIT (written), DELIMITED (a group), a CLOSED enum
  const ed = c.fromJSON(extra, 'x.Ed', { implicit: 0, explicit: 0, delimited: { implicit: 5 }, closed: 'SHUT_ZERO' });
  assert.equal(hex(c.canonical(ed)), '1000' + '1b0805' + '1c' + '2000');
  assert.equal(refusal(() => c.parse(extra, 'x.Ed', unhex('2002'))), 'REQUEST_UNKNOWN_FIELD closed');
  assert.equal(hex(c.canonical(c.parse(extra, 'x.Ed', unhex('0800 1b 1b 0801 1c 1c')))), '1b1b08011c1c');
  // a DELIMITED field sent length-prefixed has another wire type: unknown
  assert.equal(refusal(() => c.parse(extra, 'x.Ed', unhex('1a00'))), 'REQUEST_UNKNOWN_FIELD #3');
  assert.equal(refusal(() => c.parse(extra, 'x.Ed', unhex('1b 0801 24'))), 'REQUEST_INVALID delimited');
  assert.equal(refusal(() => c.parse(extra, 'x.Ed', unhex('1b 0801'))), 'REQUEST_INVALID delimited');
});

test('refusals: where, and why', () => {
  const T = 'request.v1.TransferRequest';
  const cases = [
    // singular int64 sent packed (length-delimited)
    [T, '0a 01 05', 'REQUEST_UNKNOWN_FIELD #1'],
    // a varint of eleven bytes, a 10th byte over 1, a truncated length, wire types 6/7, field 0
    [T, '08 ffffffffffffffffffff01', 'REQUEST_INVALID amount_minor'],
    [T, '08 ffffffffffffffffff02', 'REQUEST_INVALID amount_minor'],
    [T, '12 05 45', 'REQUEST_INVALID currency'],
    [T, '0e', 'REQUEST_INVALID '],
    [T, '00 00', 'REQUEST_INVALID '],
    [T, '0c', 'REQUEST_INVALID '],
    // an unknown field in a map entry itself, and in a map value that is a message
    ['request.v1.CollectionsRequest', '5a 06 12 02 28 00 08 01', 'REQUEST_UNKNOWN_FIELD by_flag[true].#5'],
    // a repeated message field sent as a varint
    ['request.v1.CollectionsRequest', '42 00 40 01', 'REQUEST_UNKNOWN_FIELD #8'],
    // the first problem in the bytes is the one reported
    [T, '38 01 ff', 'REQUEST_UNKNOWN_FIELD #7'],
    [T, '12 01 ff 38 01', 'REQUEST_INVALID currency'],
    // a message that is unknown is refused even when empty; a set but empty message is read
    ['request.v1.NestRequest', '22 00', 'REQUEST_UNKNOWN_FIELD #4'],
    ['request.v1.NestRequest', '12 00', 'accepted'],
  ];
  for (const [type, h, want] of cases) assert.equal(refusal(() => c.parse(reg, type, unhex(h))), want, `${type} ${h}`);
});

test('depth: a map entry is a level, its message value the next', () => {
  // Two.by_id: {key → Two}: request (1) → entry (2) → Two (3) → entry (4) → …
  const nested = (levels) => {
    let inner = Buffer.alloc(0);
    for (let i = 0; i < levels; i++) {
      const entry = Buffer.concat([Buffer.from([0x12]), varint(inner.length), inner]); // value only: key ""
      inner = Buffer.concat([Buffer.from([0x12]), varint(entry.length), entry]);
    }
    return inner;
  };
  // 49 map levels: the deepest message value at depth 1 + 2×49 = 99; entries at most 98
  assert.equal(refusal(() => c.parse(extra, 'x.Two', nested(49))), 'accepted');
  // 50: the 50th value is at depth 101
  assert.equal(refusal(() => c.parse(extra, 'x.Two', nested(50))), `REQUEST_INVALID ${'by_id[""].'.repeat(49)}by_id[""]`);
  // the same limit when the value is built in JavaScript
  let j = {};
  for (let i = 0; i < 50; i++) j = { by_id: { '': j } };
  const deep = c.fromJSON.bind(null, extra, 'x.Two', j);
  assert.equal(refusal(deep), `REQUEST_INVALID ${'by_id[""].'.repeat(49)}by_id[""]`);
});

function varint(n) {
  const out = [];
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128); }
  out.push(n);
  return Buffer.from(out);
}

test('reading: last wins, messages merge, oneof members replace each other', () => {
  const P = 'request.v1.PresenceRequest';
  // party {name A} then party {iban B}: merged; iban then account: the last member of the oneof
  const msg = c.parse(reg, P, unhex('1a 03 0a 01 41 1a 03 12 01 42 22 01 58 2a 00 38 01 38 02'));
  assert.equal(hex(c.canonical(msg)), '1a060a0141120142' + '2a00' + '3802');
  const json = c.fromJSON(reg, P, { party: { name: 'A', iban: 'B' }, account: {}, plain: '2' });
  assert.equal(hex(c.canonical(json)), hex(c.canonical(msg)));
  assert.throws(() => c.fromJSON(reg, P, { iban: 'x', account: {} }), c.JSONMappingError);
  // map: a later entry for a key replaces the earlier one
  const m2 = c.parse(reg, 'request.v1.PlainRequest', unhex('22 05 0a 01 61 10 01 22 05 0a 01 61 10 02'));
  assert.equal(hex(c.canonical(m2)), '22050a01611002');
});

// The matching code of an approval challenge (docs/PROTOCOL.md §8.4), from
// its text: the first four bytes of SHA-256("stepup-matching-code-v1." +
// challenge) as a big-endian unsigned integer, modulo 1000000, six digits.
test('matching code vectors (docs/examples/matching-code-vectors.json)', () => {
  const crypto = require('node:crypto');
  const file = path.join(__dirname, '..', '..', '..', 'docs', 'examples', 'matching-code-vectors.json');
  const { vectors: mc } = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(mc.length >= 4);
  for (const v of mc) {
    const digest = crypto.createHash('sha256').update('stepup-matching-code-v1.' + v.challenge, 'ascii').digest();
    assert.equal(digest.subarray(0, 4).toString('hex'), v.sha256_first4_hex, v.note);
    const code = String(digest.readUInt32BE(0) % 1000000).padStart(6, '0');
    assert.equal(code, v.matching_code, v.note);
  }
});
