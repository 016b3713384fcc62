// The canonical request encoding, the request digest and the summary of
// docs/PROTOCOL.md §13, written from that text alone (a second, independent
// reading of it; the Go implementation is the first). Node built-ins only.
//
//   const c = require('./canonical');
//   const reg = new c.Registry(fileDescriptorSetAsProtobufJSON);
//   const req = c.fromJSON(reg, 'bank.v1.TransferRequest', {amount_minor: '12000', currency: 'EUR'});
//   const req2 = c.parse(reg, 'bank.v1.TransferRequest', wireBytes); // throws RequestError
//   const bytes = c.canonical(req);
//   const dig = c.digest('/bank.v1.BankService/Transfer', bytes);
//   const items = c.summarize(req, {display: {'bank.v1.TransferRequest.to_iban': {label: 'to'}}});
//   const text = c.summaryText('/bank.v1.BankService/Transfer', items);
'use strict';

const crypto = require('node:crypto');

// ---------------------------------------------------------------------------
// Refusals (§13.6)

const REQUEST_UNKNOWN_FIELD = 'REQUEST_UNKNOWN_FIELD';
const REQUEST_INVALID = 'REQUEST_INVALID';

// RequestError is a request the server refuses: reason is
// REQUEST_UNKNOWN_FIELD or REQUEST_INVALID, field the request_field (§13.6).
class RequestError extends Error {
  constructor(reason, field, detail) {
    super(`${reason} at ${field === '' ? '(the request)' : field}: ${detail}`);
    this.name = 'RequestError';
    this.reason = reason;
    this.field = field;
  }
}

// JSONMappingError is a message that is not a valid protobuf JSON mapping
// of its type (the caller's mistake, not a request a server refuses).
class JSONMappingError extends Error {
  constructor(path, detail) {
    super(`${path === '' ? '(the message)' : path}: ${detail}`);
    this.name = 'JSONMappingError';
    this.path = path;
  }
}

const join = (path, name) => (path === '' ? name : `${path}.${name}`);

// ---------------------------------------------------------------------------
// Lossless JSON: numbers stay their text (a float's or an int64's value must
// not go through a double first).

// JSONNumber is a JSON number literal, kept as its text.
class JSONNumber {
  constructor(text) { this.text = text; }
  valueOf() { return Number(this.text); }
  toString() { return this.text; }
  toJSON() { return Number(this.text); }
}

// parseJSON is JSON.parse with every number a JSONNumber.
function parseJSON(text) {
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const fail = (what) => { throw new SyntaxError(`JSON: ${what} at offset ${i}`); };
  const value = () => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      const obj = {};
      ws();
      if (text[i] === '}') { i++; return obj; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = string();
        ws();
        if (text[i++] !== ':') fail('expected :');
        Object.defineProperty(obj, k, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return obj; }
        fail('expected , or }');
      }
    }
    if (ch === '[') {
      i++;
      const arr = [];
      ws();
      if (text[i] === ']') { i++; return arr; }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return arr; }
        fail('expected , or ]');
      }
    }
    if (ch === '"') return string();
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(lit, i)) { i += lit.length; return v; }
    }
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 1100));
    if (!m) fail('unexpected character');
    i += m[0].length;
    return new JSONNumber(m[0]);
  };
  const string = () => {
    const start = i;
    i++;
    let done = false;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) { done = true; i++; break; }
      if (c === 0x5c) i++;
      else if (c < 0x20) fail('control character in a string');
      i++;
    }
    if (!done) fail('unterminated string');
    return JSON.parse(text.slice(start, i));
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing text');
  return v;
}

// ---------------------------------------------------------------------------
// Exact decimal numbers: {neg, s, q} is (-1)^neg × s × 10^q, s a BigInt ≥ 0.

function parseDecimal(text) {
  const m = /^(-)?([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/.exec(text);
  if (!m) return null;
  const frac = m[3] || '';
  const exp = m[4] === undefined ? 0 : Number(m[4]);
  if (!Number.isSafeInteger(exp)) return null;
  return { neg: m[1] === '-', s: BigInt(m[2] + frac), q: exp - frac.length };
}

const pow10Cache = new Map();
function pow10(n) {
  let v = pow10Cache.get(n);
  if (v === undefined) { v = 10n ** BigInt(n); if (n < 4000) pow10Cache.set(n, v); }
  return v;
}

// cmpDecBin compares s × 10^q with m × 2^e (s, m ≥ 0).
function cmpDecBin(s, q, m, e) {
  let a = s;
  let b = m;
  if (q >= 0) a *= pow10(q); else b *= pow10(-q);
  if (e >= 0) b <<= BigInt(e); else a <<= BigInt(-e);
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------
// binary32 and binary64: bits, exact values, neighbours.

const F32 = { name: 'float', mantBits: 23, bias: 127, expMax: 255, maxDigits: 9 };
const F64 = { name: 'double', mantBits: 52, bias: 1023, expMax: 2047, maxDigits: 17 };
const scratch = new DataView(new ArrayBuffer(8));

function bitsOf(x, fmt) {
  if (fmt === F32) { scratch.setFloat32(0, x); return BigInt(scratch.getUint32(0)); }
  scratch.setFloat64(0, x);
  return scratch.getBigUint64(0);
}

function fromBits(bits, fmt) {
  if (fmt === F32) { scratch.setUint32(0, Number(bits)); return scratch.getFloat32(0); }
  scratch.setBigUint64(0, bits);
  return scratch.getFloat64(0);
}

// exact returns {m, e} with value m × 2^e of the non-negative bit pattern
// bits (the pattern of +∞ gives 2^(emax+1), the value one step above the
// largest finite number, as rounding treats it).
function exact(bits, fmt) {
  const mb = BigInt(fmt.mantBits);
  const expField = Number(bits >> mb);
  const frac = bits & ((1n << mb) - 1n);
  if (expField === 0) return { m: frac, e: 1 - fmt.bias - fmt.mantBits };
  return { m: frac | (1n << mb), e: expField - fmt.bias - fmt.mantBits };
}

// roundingInterval is the set of reals that round to the positive finite (or
// zero) bits under round to nearest, ties to even: {lo, hi} as {m, e}, and
// whether the ends belong to it.
function roundingInterval(bits, fmt) {
  const x = exact(bits, fmt);
  const next = exact(bits + 1n, fmt);
  const mid = (a, b) => {
    const e0 = Math.min(a.e, b.e);
    return { m: (a.m << BigInt(a.e - e0)) + (b.m << BigInt(b.e - e0)), e: e0 - 1 };
  };
  const hi = mid(x, next);
  // Below zero the neighbour of +0 is −(smallest subnormal): the interval is symmetric.
  const lo = bits === 0n ? { m: -hi.m, e: hi.e } : mid(exact(bits - 1n, fmt), x);
  return { x, lo, hi, closed: (bits & 1n) === 0n };
}

function inInterval(iv, s, q) {
  const a = iv.lo.m < 0n ? 1 : cmpDecBin(s, q, iv.lo.m, iv.lo.e);
  const b = cmpDecBin(s, q, iv.hi.m, iv.hi.e);
  return iv.closed ? a >= 0 && b <= 0 : a > 0 && b < 0;
}

// decimalToFloat rounds the exact decimal d to fmt (round to nearest, ties to
// even); null when it overflows to an infinity.
function decimalToFloat(d, fmt) {
  const sign = d.neg ? -1 : 1;
  if (d.s === 0n) return sign * 0;
  const guess64 = Number(`${d.s}e${d.q}`); // correctly rounded to binary64
  if (fmt === F64) return Number.isFinite(guess64) ? sign * guess64 : null;
  if (guess64 === 0) return sign * 0; // below 2^-1075, far below half the smallest binary32
  if (!Number.isFinite(guess64)) return null; // above the largest binary64
  const maxBits = (BigInt(fmt.expMax) << BigInt(fmt.mantBits)) - 1n;
  let bits = bitsOf(Math.fround(guess64), fmt);
  if (bits > maxBits) bits = maxBits;
  for (let step = 0; step < 4; step++) {
    const iv = roundingInterval(bits, fmt);
    if (inInterval(iv, d.s, d.q)) return sign * fromBits(bits, fmt);
    if (cmpDecBin(d.s, d.q, iv.hi.m, iv.hi.e) >= 0) {
      if (bits === maxBits) return null;
      bits += 1n;
    } else {
      bits -= 1n;
    }
  }
  throw new Error(`decimal ${d.s}e${d.q} did not round to a ${fmt.name}`);
}

// ---------------------------------------------------------------------------
// §13.5.1 Floating-point values

// shortestDigits returns {digits, n} for the finite positive x of fmt: the
// fewest digits k, the k-digit integer s (digits) and n such that
// s × 10^(n−k) rounds to x in fmt; of several, the closest to x, an even s
// on a tie.
function shortestDigits(x, fmt) {
  const bits = bitsOf(x, fmt);
  const iv = roundingInterval(bits, fmt);
  const { m, e } = iv.x;
  // n with 10^(n−1) ≤ x < 10^n
  let n = Math.floor(Math.log10(x)) + 1;
  while (cmpDecBin(1n, n - 1, m, e) > 0) n--;
  while (cmpDecBin(1n, n, m, e) <= 0) n++;
  for (let k = 1; k <= 800; k++) {
    const q = n - k;
    let num = m;
    let den = 1n;
    if (e >= 0) num <<= BigInt(e); else den <<= BigInt(-e);
    if (q >= 0) den *= pow10(q); else num *= pow10(-q);
    const lo = num / den;
    const hi = lo + 1n;
    const okLo = inInterval(iv, lo, q);
    const okHi = inInterval(iv, hi, q);
    if (!okLo && !okHi) continue;
    let s;
    if (okLo && okHi) {
      // compare x with the midpoint (lo + ½) × 10^q: 2x against (2lo + 1) × 10^q
      const c = cmpDecBin(2n * lo + 1n, q, m, e + 1);
      if (c > 0) s = lo;
      else if (c < 0) s = hi;
      else s = lo % 2n === 0n ? lo : hi;
    } else {
      s = okLo ? lo : hi;
    }
    let digits = s.toString();
    let nn = n;
    if (digits.length > k) nn += digits.length - k; // s = 10^k: the value is 10^n
    digits = digits.replace(/0+$/, '');
    return { digits, n: nn };
  }
  throw new Error(`no shortest decimal for ${x}`);
}

// layout is ECMAScript's Number::toString layout of the digits and n.
function layout(digits, n) {
  const k = digits.length;
  if (k <= n && n <= 21) return digits + '0'.repeat(n - k);
  if (n > 0 && n <= 21) return `${digits.slice(0, n)}.${digits.slice(n)}`;
  if (n > -6 && n <= 0) return `0.${'0'.repeat(-n)}${digits}`;
  const exp = n - 1;
  return `${digits[0]}${k > 1 ? `.${digits.slice(1)}` : ''}e${exp < 0 ? '-' : '+'}${Math.abs(exp)}`;
}

// formatFloat is the text of §13.5.1 of x as a float (bits 32) or a
// double (bits 64). x must be a value of that format.
function formatFloat(x, bits) {
  const fmt = bits === 32 ? F32 : F64;
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  if (fmt === F32 && Math.fround(x) !== x) throw new RangeError(`${x} is not a binary32 value`);
  const { digits, n } = shortestDigits(Math.abs(x), fmt);
  return (x < 0 ? '-' : '') + layout(digits, n);
}

// ---------------------------------------------------------------------------
// Descriptors

const TYPE_NAMES = [null, 'double', 'float', 'int64', 'uint64', 'int32', 'fixed64', 'fixed32', 'bool',
  'string', 'group', 'message', 'bytes', 'uint32', 'enum', 'sfixed32', 'sfixed64', 'sint32', 'sint64'];

function kindOf(type) {
  if (typeof type === 'string' && type.startsWith('TYPE_')) {
    const k = type.slice(5).toLowerCase();
    if (TYPE_NAMES.includes(k)) return k;
  }
  const k = TYPE_NAMES[Number(type)];
  if (!k) throw new Error(`unknown field type ${type}`);
  return k;
}

function labelOf(label) {
  if (label === undefined) return 'optional';
  if (typeof label === 'string' && label.startsWith('LABEL_')) return label.slice(6).toLowerCase();
  return [null, 'optional', 'required', 'repeated'][Number(label)];
}

// §13.2's table: the wire type of each declared type.
const WIRE = {
  int32: 0, int64: 0, uint32: 0, uint64: 0, sint32: 0, sint64: 0, bool: 0, enum: 0,
  fixed32: 5, sfixed32: 5, float: 5, fixed64: 1, sfixed64: 1, double: 1,
  string: 2, bytes: 2, message: 2, group: 3,
};
const NUMERIC = new Set(Object.keys(WIRE).filter((k) => !['string', 'bytes', 'message', 'group'].includes(k)));
const INTEGER = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64']);
const RANGE = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n], sint32: [-(2n ** 31n), 2n ** 31n - 1n], sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n], sint64: [-(2n ** 63n), 2n ** 63n - 1n], sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint32: [0n, 2n ** 32n - 1n], fixed32: [0n, 2n ** 32n - 1n], uint64: [0n, 2n ** 64n - 1n], fixed64: [0n, 2n ** 64n - 1n],
  enum: [-(2n ** 31n), 2n ** 31n - 1n],
};

const DISPLAY_OPTION = '[stepup.v1.display]';
const AMOUNT_MINOR = 'DISPLAY_FORMAT_AMOUNT_MINOR';

// featureName reads an editions feature given by name or number.
function featureName(v, names) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && !/^[0-9]+$/.test(v)) return v;
  return names[Number(v)];
}
const PRESENCE_NAMES = [undefined, 'EXPLICIT', 'IMPLICIT', 'LEGACY_REQUIRED'];
const ENUM_TYPE_NAMES = [undefined, 'OPEN', 'CLOSED'];
const ENCODING_NAMES = [undefined, 'LENGTH_PREFIXED', 'DELIMITED'];

function withFeatures(base, options) {
  const f = options && options.features;
  if (!f) return base;
  const r = { ...base };
  const p = featureName(f.field_presence ?? f.fieldPresence, PRESENCE_NAMES);
  const e = featureName(f.enum_type ?? f.enumType, ENUM_TYPE_NAMES);
  const m = featureName(f.message_encoding ?? f.messageEncoding, ENCODING_NAMES);
  if (p) r.presence = p;
  if (e) r.enumType = e;
  if (m) r.encoding = m;
  return r;
}

function fileFeatures(file) {
  const syntax = file.syntax || 'proto2';
  if (syntax === 'proto2') return { syntax, presence: 'EXPLICIT', enumType: 'CLOSED', encoding: 'LENGTH_PREFIXED' };
  if (syntax === 'proto3') return { syntax, presence: 'IMPLICIT', enumType: 'OPEN', encoding: 'LENGTH_PREFIXED' };
  if (syntax === 'editions') {
    return withFeatures({ syntax, presence: 'EXPLICIT', enumType: 'OPEN', encoding: 'LENGTH_PREFIXED' }, file.options);
  }
  throw new Error(`${file.name}: unknown syntax ${syntax}`);
}

const WELL_KNOWN = {
  'google.protobuf.Timestamp': 'timestamp',
  'google.protobuf.Duration': 'duration',
  'google.protobuf.DoubleValue': 'wrapper', 'google.protobuf.FloatValue': 'wrapper',
  'google.protobuf.Int64Value': 'wrapper', 'google.protobuf.UInt64Value': 'wrapper',
  'google.protobuf.Int32Value': 'wrapper', 'google.protobuf.UInt32Value': 'wrapper',
  'google.protobuf.BoolValue': 'wrapper', 'google.protobuf.StringValue': 'wrapper',
  'google.protobuf.BytesValue': 'wrapper',
};

// Registry indexes a google.protobuf.FileDescriptorSet given in the protobuf
// JSON mapping (proto field names or JSON names).
class Registry {
  constructor(fds) {
    this.messages = new Map();
    this.enums = new Map();
    this.methods = new Map();
    const pending = [];
    for (const file of fds.file || []) {
      const features = fileFeatures(file);
      const pkg = file.package || '';
      for (const e of file.enum_type || file.enumType || []) this._addEnum(e, pkg, features);
      for (const m of file.message_type || file.messageType || []) this._addMessage(m, pkg, features, pending);
      for (const s of file.service || []) {
        const svc = pkg ? `${pkg}.${s.name}` : s.name;
        for (const meth of s.method || []) {
          this.methods.set(`/${svc}/${meth.name}`, strip(meth.input_type ?? meth.inputType));
        }
      }
    }
    for (const [field, typeName] of pending) {
      if (field.kind === 'enum') {
        field.enum = this.enums.get(typeName);
        if (!field.enum) throw new Error(`${field.fullName}: unknown enum ${typeName}`);
      } else {
        field.message = this.messages.get(typeName);
        if (!field.message) throw new Error(`${field.fullName}: unknown message ${typeName}`);
        if (field.kind === 'message' && field.features.encoding === 'DELIMITED' && !field.message.mapEntry) field.kind = 'group';
        field.map = field.repeated && field.message.mapEntry;
      }
    }
  }

  _addEnum(e, scope, features) {
    const fullName = scope ? `${scope}.${e.name}` : e.name;
    const f = withFeatures(features, e.options);
    const values = (e.value || []).map((v) => ({ name: v.name, number: BigInt(Number(v.number ?? 0)) }));
    const nameOf = new Map();
    for (const v of values) if (!nameOf.has(v.number)) nameOf.set(v.number, v.name);
    this.enums.set(fullName, {
      fullName, values, closed: f.enumType === 'CLOSED', nameOf,
      byName: new Map(values.map((v) => [v.name, v.number])),
    });
  }

  _addMessage(d, scope, features, pending) {
    const fullName = scope ? `${scope}.${d.name}` : d.name;
    const mf = withFeatures(features, d.options);
    const opts = d.options || {};
    const type = {
      fullName, name: d.name, fields: [], byNumber: new Map(), byKey: new Map(),
      mapEntry: opts.map_entry === true || opts.mapEntry === true,
      wellKnown: WELL_KNOWN[fullName] || null,
    };
    const oneofs = (d.oneof_decl || d.oneofDecl || []).map(() => []);
    for (const fd of d.field || []) {
      const label = labelOf(fd.label);
      const kind = kindOf(fd.type);
      const ff = withFeatures(mf, fd.options);
      const oneofIndex = fd.oneof_index ?? fd.oneofIndex;
      const synthetic = fd.proto3_optional === true || fd.proto3Optional === true;
      const repeated = label === 'repeated';
      let explicit;
      if (repeated) explicit = false;
      else if (kind === 'message' || kind === 'group' || oneofIndex !== undefined || synthetic) explicit = true;
      else if (ff.syntax === 'proto2') explicit = true;
      else if (ff.syntax === 'proto3') explicit = false;
      else explicit = label === 'required' || ff.presence !== 'IMPLICIT';
      const options = fd.options || {};
      const field = {
        name: fd.name, number: Number(fd.number), fullName: `${fullName}.${fd.name}`, parent: type,
        kind, repeated, map: false, explicit, features: ff,
        jsonName: fd.json_name ?? fd.jsonName ?? lowerCamel(fd.name),
        oneof: oneofIndex !== undefined && !synthetic ? Number(oneofIndex) : undefined,
        message: null, enum: null,
        display: options[DISPLAY_OPTION] || null,
      };
      if (!(field.number >= 1 && field.number <= 536870911)) throw new Error(`${field.fullName}: field number ${fd.number}`);
      if (type.byNumber.has(field.number)) throw new Error(`${field.fullName}: field number ${field.number} used twice`);
      type.fields.push(field);
      type.byNumber.set(field.number, field);
      if (field.oneof !== undefined) oneofs[field.oneof].push(field);
      if (kind === 'enum' || kind === 'message' || kind === 'group') pending.push([field, strip(fd.type_name ?? fd.typeName)]);
    }
    type.oneofs = oneofs;
    type.byNumberSorted = [...type.fields].sort((a, b) => a.number - b.number);
    for (const field of type.fields) {
      // JSON keys: the proto name, the JSON name, and for a group its type's name
      for (const key of [field.name, field.jsonName]) type.byKey.set(key, field);
      if (field.kind === 'group') {
        const tn = strip(d.field.find((x) => x.name === field.name).type_name ?? '');
        type.byKey.set(tn.slice(tn.lastIndexOf('.') + 1), field);
      }
    }
    this.messages.set(fullName, type);
    for (const e of d.enum_type || d.enumType || []) this._addEnum(e, fullName, mf);
    for (const n of d.nested_type || d.nestedType || []) this._addMessage(n, fullName, mf, pending);
  }

  message(name) {
    const t = this.messages.get(strip(name));
    if (!t) throw new Error(`unknown message type ${name}`);
    return t;
  }

  // inputType is the input message type of a full method "/pkg.Service/Method".
  inputType(method) {
    const name = this.methods.get(method);
    if (!name) throw new Error(`unknown method ${method}`);
    return this.message(name);
  }
}

function strip(name) {
  if (typeof name !== 'string' || name === '') throw new Error(`missing type name ${name}`);
  return name.startsWith('.') ? name.slice(1) : name;
}

function lowerCamel(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

// ---------------------------------------------------------------------------
// Values (§13.1)
//
// A Message holds the fields that are set, by number: integers and enums as
// BigInt, bool as boolean, float and double as number (a float holds a
// binary32 value), string as string, bytes as Uint8Array, messages and
// groups as Message, repeated fields as arrays, maps as Map(keyId → {key,
// value}).

class Message {
  constructor(type) {
    this.type = type;
    this.values = new Map();
  }

  has(field) { return this.values.has(field.number); }

  // get is the field's value: for an unset field its default (the zero
  // value; an empty list or map).
  get(field) {
    const v = this.values.get(field.number);
    if (v !== undefined) return v;
    if (field.map) return new Map();
    if (field.repeated) return [];
    return zeroOf(field);
  }

  set(field, value) {
    if (field.oneof !== undefined) {
      for (const other of this.type.oneofs[field.oneof]) if (other !== field) this.values.delete(other.number);
    }
    this.values.set(field.number, value);
  }
}

function zeroOf(field) {
  switch (field.kind) {
    case 'bool': return false;
    case 'float': case 'double': return 0;
    case 'string': return '';
    case 'bytes': return new Uint8Array(0);
    case 'message': case 'group': return new Message(field.message);
    case 'enum':
      // A closed enum's default is its first value (a map entry without its value).
      return field.enum.closed && field.enum.values.length ? field.enum.values[0].number : 0n;
    default: return 0n;
  }
}

function isZero(field, v) {
  switch (field.kind) {
    case 'bool': return v === false;
    case 'float': case 'double': return Object.is(v, 0); // −0.0 is not zero
    case 'string': return v === '';
    case 'bytes': return v.length === 0;
    case 'message': case 'group': return false;
    default: return v === 0n;
  }
}

// present says whether canonical(v) writes the field (§13.2).
function present(msg, field) {
  if (!msg.has(field)) return false;
  const v = msg.values.get(field.number);
  if (field.map) return v.size > 0;
  if (field.repeated) return v.length > 0;
  if (field.explicit) return true;
  return !isZero(field, v);
}

// ---------------------------------------------------------------------------
// UTF-8 (RFC 3629: shortest form, no surrogates, at most U+10FFFF)

function validUTF8(b) {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) { i++; continue; }
    let n;
    let min;
    let cp;
    if (c >= 0xc2 && c <= 0xdf) { n = 1; min = 0x80; cp = c & 0x1f; } else if (c >= 0xe0 && c <= 0xef) { n = 2; min = 0x800; cp = c & 0x0f; } else if (c >= 0xf0 && c <= 0xf4) { n = 3; min = 0x10000; cp = c & 0x07; } else return false;
    for (let j = 1; j <= n; j++) {
      const cc = b[i + j];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// wellFormed says whether a JS string has no lone surrogate (so that it is
// a sequence of Unicode scalar values, encodable as UTF-8).
function wellFormed(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Reading wire bytes (§13.1, §13.6)

const MAX_DEPTH = 100;

class Reader {
  constructor(buf, pos, end, path) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.path = path; // where a malformed record is reported
  }

  bad(detail) { return new RequestError(REQUEST_INVALID, this.path, detail); }

  varint() {
    let v = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw this.bad('truncated varint');
      const b = this.buf[this.pos++];
      if (i === 9 && b > 1) throw this.bad('varint overflows 64 bits');
      v |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) return v;
    }
    throw this.bad('varint longer than ten bytes');
  }

  take(n) {
    if (n > this.end - this.pos) throw this.bad('truncated record');
    const s = this.pos;
    this.pos += n;
    return this.buf.subarray(s, s + n);
  }

  length() {
    const n = this.varint();
    if (n > BigInt(this.end - this.pos)) throw this.bad('length past the end of the message');
    return Number(n);
  }

  // tag reads a tag: {number, wire}; a zero or too large number, wire
  // types 6 and 7 are malformed.
  tag() {
    const t = this.varint();
    if (t > 0xffffffffn) throw this.bad('tag out of range');
    const number = Number(t >> 3n);
    const wire = Number(t & 7n);
    if (number === 0) throw this.bad('field number 0');
    if (wire > 5) throw this.bad(`wire type ${wire}`);
    return { number, wire };
  }

  // skip passes over the value of a record of the wire type (a group up to
  // its end, iteratively).
  skip(number, wire) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.take(8);
    else if (wire === 5) this.take(4);
    else if (wire === 2) this.take(this.length());
    else if (wire === 3) {
      const open = [number];
      while (open.length) {
        if (this.pos >= this.end) throw this.bad('unterminated group');
        const t = this.tag();
        if (t.wire === 4) {
          if (t.number !== open.pop()) throw this.bad('mismatched end of group');
        } else if (t.wire === 3) open.push(t.number);
        else this.skip(t.number, t.wire);
      }
    } else throw this.bad('unexpected end of group');
  }
}

function unknown(path, number) {
  return new RequestError(REQUEST_UNKNOWN_FIELD, join(path, `#${number}`), `field ${number} unknown, an extension, or of another wire type`);
}

// readScalar reads one value of a numeric kind whose wire form is wire
// (the declared one; a packed element).
function readScalar(r, kind) {
  switch (kind) {
    case 'int32': case 'enum': return BigInt.asIntN(32, r.varint());
    case 'int64': return BigInt.asIntN(64, r.varint());
    case 'uint32': return BigInt.asUintN(32, r.varint());
    case 'uint64': return r.varint();
    case 'sint32': { const u = BigInt.asUintN(32, r.varint()); return (u >> 1n) ^ -(u & 1n); }
    case 'sint64': { const u = r.varint(); return (u >> 1n) ^ -(u & 1n); }
    case 'bool': return r.varint() !== 0n;
    case 'fixed32': { const b = r.take(4); return BigInt(new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true)); }
    case 'sfixed32': { const b = r.take(4); return BigInt(new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true)); }
    case 'float': { const b = r.take(4); return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true); }
    case 'fixed64': { const b = r.take(8); return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true); }
    case 'sfixed64': { const b = r.take(8); return new DataView(b.buffer, b.byteOffset, 8).getBigInt64(0, true); }
    case 'double': { const b = r.take(8); return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true); }
    default: throw new Error(`readScalar ${kind}`);
  }
}

function checkEnum(field, v, where) {
  if (field.kind === 'enum' && field.enum.closed && !field.enum.nameOf.has(v)) {
    throw new RequestError(REQUEST_UNKNOWN_FIELD, where, `${v} is not a number of the closed enum ${field.enum.fullName}`);
  }
  return v;
}

// readValue reads the value of one record of a field of a non-numeric kind
// or a singular numeric one. into is the message to merge into (a singular
// message field already set), depth the depth of a message value.
function readValue(r, field, where, depth, into) {
  switch (field.kind) {
    case 'string': {
      const b = r.take(r.length());
      if (!validUTF8(b)) throw new RequestError(REQUEST_INVALID, where, 'a string that is not valid UTF-8');
      return Buffer.from(b.buffer, b.byteOffset, b.length).toString('utf8');
    }
    case 'bytes': return Uint8Array.from(r.take(r.length()));
    case 'message': {
      if (depth > MAX_DEPTH) throw new RequestError(REQUEST_INVALID, where, `a message deeper than ${MAX_DEPTH}`);
      const n = r.length();
      const msg = into || new Message(field.message);
      const sub = new Reader(r.buf, r.pos, r.pos + n, where);
      readFields(sub, msg, where, depth, undefined);
      r.pos += n;
      return msg;
    }
    case 'group': {
      if (depth > MAX_DEPTH) throw new RequestError(REQUEST_INVALID, where, `a message deeper than ${MAX_DEPTH}`);
      const msg = into || new Message(field.message);
      const sub = new Reader(r.buf, r.pos, r.end, where);
      readFields(sub, msg, where, depth, field.number);
      r.pos = sub.pos;
      return msg;
    }
    default: return checkEnum(field, readScalar(r, field.kind), where);
  }
}

// readFields reads records into msg (at depth) until the reader's end, or,
// for a group, its end-group record.
function readFields(r, msg, path, depth, groupNumber) {
  const type = msg.type;
  for (;;) {
    r.path = path;
    if (r.pos >= r.end) {
      if (groupNumber !== undefined) throw r.bad('unterminated group');
      return;
    }
    const { number, wire } = r.tag();
    if (wire === 4) {
      if (number === groupNumber) return;
      throw r.bad('unexpected end of group');
    }
    const field = type.byNumber.get(number);
    if (!field) throw unknown(path, number);
    const name = join(path, field.name);
    r.path = name;
    if (field.map) {
      if (wire !== 2) throw unknown(path, number);
      const n = r.length();
      const entries = msg.has(field) ? msg.values.get(field.number) : new Map();
      const entry = readMapEntry(new Reader(r.buf, r.pos, r.pos + n, name), field, name, depth + 1);
      r.pos += n;
      entries.delete(entry.id); // a later entry for a key replaces it, and is ordered by key anyway
      entries.set(entry.id, entry);
      msg.set(field, entries);
    } else if (field.repeated) {
      const list = msg.has(field) ? msg.values.get(field.number) : [];
      if (NUMERIC.has(field.kind) && wire === 2) {
        const n = r.length();
        const sub = new Reader(r.buf, r.pos, r.pos + n, name);
        while (sub.pos < sub.end) list.push(checkEnum(field, readScalar(sub, field.kind), `${name}[${list.length}]`));
        r.pos += n;
      } else if (wire === WIRE[field.kind]) {
        list.push(readValue(r, field, `${name}[${list.length}]`, depth + 1, null));
      } else {
        throw unknown(path, number);
      }
      msg.set(field, list);
    } else {
      if (wire !== WIRE[field.kind]) throw unknown(path, number);
      const merge = (field.kind === 'message' || field.kind === 'group') && msg.has(field) ? msg.values.get(field.number) : null;
      msg.set(field, readValue(r, field, name, depth + 1, merge));
    }
  }
}

// readMapEntry reads one map entry (a message at depth): key (field 1) and
// value (field 2), both defaulting to their zero values; other records are
// ignored (§13.1). The key is found
// first so that a problem in the value is reported as name[key].
function readMapEntry(r, field, name, depth) {
  const entryType = field.message;
  const keyField = entryType.byNumber.get(1);
  const valueField = entryType.byNumber.get(2);
  const records = [];
  while (r.pos < r.end) {
    const start = r.pos;
    const t = r.tag();
    const valueStart = r.pos;
    r.skip(t.number, t.wire);
    records.push({ ...t, start, valueStart, end: r.pos });
  }
  let key = zeroOf(keyField);
  for (const rec of records) {
    if (rec.number === 1 && rec.wire === WIRE[keyField.kind]) {
      key = readValue(new Reader(r.buf, rec.valueStart, rec.end, name), keyField, name, depth + 1, null);
    }
  }
  const where = `${name}[${keyText(key)}]`;
  if (depth > MAX_DEPTH) throw new RequestError(REQUEST_INVALID, where, `a message deeper than ${MAX_DEPTH}`);
  let value;
  for (const rec of records) {
    if (rec.number === 1 && rec.wire === WIRE[keyField.kind]) continue;
    if (rec.number === 2 && valueField && rec.wire === WIRE[valueField.kind]) {
      const into = valueField.kind === 'message' ? value : null;
      value = readValue(new Reader(r.buf, rec.valueStart, rec.end, where), valueField, where, depth + 1, into);
    }
    // §13.1: any other record of a map entry (another number, or the key
    // or value with another wire type) is ignored, as parsers ignore it.
  }
  if (value === undefined) value = zeroOf(valueField);
  return { id: keyId(keyField, key), key, value };
}

// parse reads bytes as a value of the message type (§13.1), refusing what
// §13.6 refuses with a RequestError.
function parse(registry, typeName, bytes) {
  const type = typeof typeName === 'string' ? registry.message(typeName) : typeName;
  const buf = bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
  const msg = new Message(type);
  readFields(new Reader(buf, 0, buf.length, ''), msg, '', 1, undefined);
  return msg;
}

// ---------------------------------------------------------------------------
// Map keys

function keyId(field, key) {
  return field.kind === 'string' ? `s${key}` : String(key);
}

// keyText is a key's text: a string itself, a bool true or false, an
// integer in decimal.
// keyText names a map key in request_field (§13.6): a string between double
// quotes with \ and " escaped, any other key as its text (bools and
// integers print the same as their summary text).
function keyText(key) {
  return typeof key === 'string' ? `"${key.replace(/[\\"]/g, (c) => `\\${c}`)}"` : String(key);
}

const utf8 = (s) => Buffer.from(s, 'utf8');

// sortedEntries orders a map's entries by key (§13.2).
function sortedEntries(field, map) {
  const keyKind = field.message.byNumber.get(1).kind;
  const entries = [...map.values()];
  if (keyKind === 'string') {
    const withBytes = entries.map((e) => [utf8(e.key), e]);
    withBytes.sort((a, b) => Buffer.compare(a[0], b[0]));
    return withBytes.map((x) => x[1]);
  }
  if (keyKind === 'bool') return entries.sort((a, b) => Number(a.key) - Number(b.key));
  return entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

// ---------------------------------------------------------------------------
// §13.2 Canonical encoding

class Writer {
  constructor() { this.chunks = []; this.length = 0; }

  bytes(b) { this.chunks.push(b); this.length += b.length; }

  varint(v) {
    let u = BigInt.asUintN(64, BigInt(v));
    const out = [];
    while (u >= 0x80n) { out.push(Number(u & 0x7fn) | 0x80); u >>= 7n; }
    out.push(Number(u));
    this.bytes(Uint8Array.from(out));
  }

  tag(number, wire) { this.varint(BigInt(number) * 8n + BigInt(wire)); }

  finish() { return Buffer.concat(this.chunks, this.length); }
}

function writeScalar(w, kind, v, where) {
  switch (kind) {
    case 'int32': case 'int64': case 'uint32': case 'uint64': case 'enum':
      w.varint(v); return; // negative values sign-extended to 64 bits
    case 'sint32': case 'sint64': w.varint(v >= 0n ? 2n * v : -2n * v - 1n); return;
    case 'bool': w.bytes(Uint8Array.of(v ? 1 : 0)); return;
    case 'fixed32': case 'sfixed32': {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, Number(BigInt.asUintN(32, v)), true);
      w.bytes(b); return;
    }
    case 'fixed64': case 'sfixed64': {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
      w.bytes(b); return;
    }
    case 'float': {
      const b = new Uint8Array(4);
      if (Number.isNaN(v)) new DataView(b.buffer).setUint32(0, 0x7fc00000, true);
      else new DataView(b.buffer).setFloat32(0, v, true);
      w.bytes(b); return;
    }
    case 'double': {
      const b = new Uint8Array(8);
      if (Number.isNaN(v)) new DataView(b.buffer).setBigUint64(0, 0x7ff8000000000000n, true);
      else new DataView(b.buffer).setFloat64(0, v, true);
      w.bytes(b); return;
    }
    default: throw new Error(`${where}: writeScalar ${kind}`);
  }
}

// writeRecord writes one record of the field with value v.
function writeRecord(w, field, v, where, depth) {
  switch (field.kind) {
    case 'string': {
      if (!wellFormed(v)) throw new RequestError(REQUEST_INVALID, where, 'a string that is not valid UTF-8');
      const b = utf8(v);
      w.tag(field.number, 2); w.varint(b.length); w.bytes(b); return;
    }
    case 'bytes': w.tag(field.number, 2); w.varint(v.length); w.bytes(v); return;
    case 'message': {
      const b = encodeMessage(v, where, depth);
      w.tag(field.number, 2); w.varint(b.length); w.bytes(b); return;
    }
    case 'group':
      w.tag(field.number, 3); w.bytes(encodeMessage(v, where, depth)); w.tag(field.number, 4); return;
    default:
      w.tag(field.number, WIRE[field.kind]); writeScalar(w, field.kind, v, where);
  }
}

function encodeMessage(msg, path, depth) {
  if (depth > MAX_DEPTH) throw new RequestError(REQUEST_INVALID, path, `a message deeper than ${MAX_DEPTH}`);
  const w = new Writer();
  for (const field of msg.type.byNumberSorted) {
    if (!present(msg, field)) continue;
    const v = msg.values.get(field.number);
    const name = join(path, field.name);
    if (field.map) {
      const keyField = field.message.byNumber.get(1);
      const valueField = field.message.byNumber.get(2);
      for (const e of sortedEntries(field, v)) {
        const where = `${name}[${keyText(e.key)}]`;
        if (depth + 1 > MAX_DEPTH) throw new RequestError(REQUEST_INVALID, where, `a message deeper than ${MAX_DEPTH}`);
        const ew = new Writer();
        writeRecord(ew, keyField, e.key, name, depth + 2); // both always written
        writeRecord(ew, valueField, e.value, where, depth + 2);
        const b = ew.finish();
        w.tag(field.number, 2); w.varint(b.length); w.bytes(b);
      }
    } else if (field.repeated) {
      if (NUMERIC.has(field.kind)) {
        const pw = new Writer();
        for (const x of v) writeScalar(pw, field.kind, x, name);
        const b = pw.finish();
        w.tag(field.number, 2); w.varint(b.length); w.bytes(b);
      } else {
        v.forEach((x, i) => writeRecord(w, field, x, `${name}[${i}]`, depth + 1));
      }
    } else {
      writeRecord(w, field, v, name, depth + 1);
    }
  }
  return w.finish();
}

// canonical is canonical(v) of §13.2 (a Buffer); it throws a RequestError
// for a string that is not valid UTF-8 or a message deeper than 100.
function canonical(msg) {
  return encodeMessage(msg, '', 1);
}

// ---------------------------------------------------------------------------
// §13.3 Request digest

function digest(method, canonicalBytes) {
  if (!/^[\x20-\x7e]*$/.test(method)) throw new Error(`method ${JSON.stringify(method)} is not ASCII`);
  return crypto.createHash('sha256').update(Buffer.from(method, 'ascii')).update(Uint8Array.of(0))
    .update(canonicalBytes).digest('base64url');
}

// ---------------------------------------------------------------------------
// The protobuf JSON mapping → a value

const bad = (path, detail) => new JSONMappingError(path, detail);

function numberText(j) {
  if (j instanceof JSONNumber) return j.text;
  if (typeof j === 'number') {
    if (!Number.isFinite(j)) return null;
    return Object.is(j, -0) ? '-0' : String(j);
  }
  return null;
}

function jsonInteger(j, kind, path) {
  let text = numberText(j);
  if (text === null) {
    if (typeof j !== 'string') throw bad(path, `expected an integer for ${kind}, got ${JSON.stringify(j)}`);
    text = j;
  }
  const d = parseDecimal(text);
  if (!d) throw bad(path, `${JSON.stringify(text)} is not a number`);
  let v;
  if (d.q >= 0) {
    if (d.s !== 0n && d.q > 40) throw bad(path, `${text} out of range for ${kind}`);
    v = d.s * pow10(d.q);
  } else {
    if (-d.q > 4000) throw bad(path, `${text} is not an integer`);
    const p = pow10(-d.q);
    if (d.s % p !== 0n) throw bad(path, `${text} is not an integer`);
    v = d.s / p;
  }
  if (d.neg) v = -v;
  const [lo, hi] = RANGE[kind];
  if (v < lo || v > hi) throw bad(path, `${text} out of range for ${kind}`);
  return v;
}

function jsonFloat(j, fmt, path) {
  if (j === 'NaN') return NaN;
  if (j === 'Infinity') return Infinity;
  if (j === '-Infinity') return -Infinity;
  let text = numberText(j);
  if (text === null) {
    if (typeof j !== 'string') throw bad(path, `expected a number for ${fmt.name}, got ${JSON.stringify(j)}`);
    text = j;
  }
  if (typeof j === 'number') {
    // a JavaScript number is already a double: round that double
    if (fmt === F64) return j;
    const f = Math.fround(j);
    if (!Number.isFinite(f)) throw bad(path, `${text} out of range for float`);
    return f;
  }
  const d = parseDecimal(text);
  if (!d) throw bad(path, `${JSON.stringify(text)} is not a number`);
  const v = decimalToFloat(d, fmt);
  if (v === null) throw bad(path, `${text} out of range for ${fmt.name}`);
  return v;
}

function jsonBytes(j, path) {
  if (typeof j !== 'string') throw bad(path, 'expected base64 text for bytes');
  const std = j.replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(std) || (std.includes('=') && std.length % 4 !== 0) || std.replace(/=+$/, '').length % 4 === 1) {
    throw bad(path, 'invalid base64');
  }
  return Uint8Array.from(Buffer.from(std, 'base64'));
}

function jsonEnum(j, field, path) {
  const e = field.enum;
  if (typeof j === 'string' && !/^-?[0-9]+$/.test(j)) {
    const v = e.byName.get(j);
    if (v === undefined) throw bad(path, `${j} is not a value of ${e.fullName}`);
    return v;
  }
  const v = jsonInteger(j, 'enum', path);
  if (e.closed && !e.nameOf.has(v)) throw bad(path, `${v} is not a number of the closed enum ${e.fullName}`);
  return v;
}

function jsonScalar(j, field, path) {
  switch (field.kind) {
    case 'bool':
      if (typeof j !== 'boolean') throw bad(path, 'expected true or false');
      return j;
    case 'string':
      if (typeof j !== 'string') throw bad(path, 'expected a string');
      return j;
    case 'bytes': return jsonBytes(j, path);
    case 'float': return jsonFloat(j, F32, path);
    case 'double': return jsonFloat(j, F64, path);
    case 'enum': return jsonEnum(j, field, path);
    default: return jsonInteger(j, field.kind, path);
  }
}

// days from 1970-01-01 of a proleptic Gregorian date (and back)
function daysFromCivil(y, m, d) {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z) {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const TS_MIN = -62135596800n;
const TS_MAX = 253402300799n;
const DUR_MAX = 315576000000n;

function jsonTimestamp(j, path) {
  const m = typeof j === 'string' && /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})$/.exec(j);
  if (!m) throw bad(path, `${JSON.stringify(j)} is not an RFC 3339 timestamp`);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const dim = [31, y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if (mo < 1 || mo > 12 || d < 1 || d > dim[mo - 1] || h > 23 || mi > 59 || s > 59) throw bad(path, `${j}: no such time`);
  let offset = 0;
  if (m[8] !== 'Z') {
    const oh = Number(m[8].slice(1, 3));
    const om = Number(m[8].slice(4, 6));
    if (oh > 23 || om > 59) throw bad(path, `${j}: bad offset`);
    offset = (m[8][0] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const seconds = BigInt(daysFromCivil(y, mo, d)) * 86400n + BigInt(h * 3600 + mi * 60 + s - offset);
  if (seconds < TS_MIN || seconds > TS_MAX) throw bad(path, `${j} out of the Timestamp range`);
  const nanos = BigInt((m[7] || '').padEnd(9, '0'));
  return [seconds, nanos];
}

function jsonDuration(j, path) {
  const m = typeof j === 'string' && /^(-)?([0-9]+)(?:\.([0-9]{1,9}))?s$/.exec(j);
  if (!m) throw bad(path, `${JSON.stringify(j)} is not a Duration ("1.5s")`);
  const sign = m[1] ? -1n : 1n;
  const seconds = BigInt(m[2]);
  const nanos = BigInt((m[3] || '').padEnd(9, '0'));
  if (seconds > DUR_MAX) throw bad(path, `${j} out of the Duration range`);
  return [sign * seconds, sign * nanos];
}

function jsonMessage(type, j, path, depth) {
  if (depth > MAX_DEPTH) throw new RequestError(REQUEST_INVALID, path, `a message deeper than ${MAX_DEPTH}`);
  const msg = new Message(type);
  const pair = (s, n) => {
    msg.set(type.byNumber.get(1), s);
    msg.set(type.byNumber.get(2), n);
    return msg;
  };
  // the JSON forms of the well-known types: a string, or the wrapped value
  if (type.wellKnown === 'timestamp') return pair(...jsonTimestamp(j, path));
  if (type.wellKnown === 'duration') return pair(...jsonDuration(j, path));
  if (type.wellKnown === 'wrapper') {
    const f = type.byNumber.get(1);
    msg.set(f, jsonScalar(j, f, path));
    return msg;
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j) || j instanceof JSONNumber) {
    throw bad(path, `expected an object for ${type.fullName}`);
  }
  const seen = new Set();
  const oneofSeen = new Map();
  for (const key of Object.keys(j)) {
    const field = type.byKey.get(key);
    if (!field) throw bad(path, `${type.fullName} has no field ${key}`);
    if (seen.has(field)) throw bad(path, `field ${field.name} given twice`);
    seen.add(field);
    const v = j[key];
    if (v === null) continue; // null: the field is unset
    const name = join(path, field.name);
    if (field.oneof !== undefined) {
      if (oneofSeen.has(field.oneof)) throw bad(path, `${field.name} and ${oneofSeen.get(field.oneof)} are of one oneof`);
      oneofSeen.set(field.oneof, field.name);
    }
    if (field.map) {
      if (typeof v !== 'object' || Array.isArray(v) || v instanceof JSONNumber) throw bad(name, 'expected an object for a map');
      const keyField = field.message.byNumber.get(1);
      const valueField = field.message.byNumber.get(2);
      const entries = new Map();
      for (const k of Object.keys(v)) {
        let key;
        if (keyField.kind === 'string') key = k;
        else if (keyField.kind === 'bool') {
          if (k !== 'true' && k !== 'false') throw bad(name, `map key ${k} is not a bool`);
          key = k === 'true';
        } else key = jsonInteger(k, keyField.kind, `${name}[${k}]`);
        const where = `${name}[${keyText(key)}]`;
        if (v[k] === null) throw bad(where, 'a map value cannot be null');
        const value = valueField.kind === 'message' ? jsonMessage(valueField.message, v[k], where, depth + 2) : jsonScalar(v[k], valueField, where);
        const id = keyId(keyField, key);
        if (entries.has(id)) throw bad(where, 'map key given twice');
        entries.set(id, { id, key, value });
      }
      msg.set(field, entries);
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw bad(name, 'expected an array');
      msg.set(field, v.map((x, i) => {
        const where = `${name}[${i}]`;
        if (x === null) throw bad(where, 'a list element cannot be null');
        return field.kind === 'message' || field.kind === 'group' ? jsonMessage(field.message, x, where, depth + 1) : jsonScalar(x, field, where);
      }));
    } else if (field.kind === 'message' || field.kind === 'group') {
      msg.set(field, jsonMessage(field.message, v, name, depth + 1));
    } else {
      msg.set(field, jsonScalar(v, field, name));
    }
  }
  return msg;
}

// fromJSON builds a value of the message type from its protobuf JSON
// mapping (parsed: JSON.parse, or parseJSON to keep numbers exact).
function fromJSON(registry, typeName, json) {
  const type = typeof typeName === 'string' ? registry.message(typeName) : typeName;
  return jsonMessage(type, json, '', 1);
}

// ---------------------------------------------------------------------------
// §13.5 Summary

const MAX_ITEMS = 32;
const MAX_WALK_DEPTH = 8;
const MAX_TEXT = 128;

const CURRENCY_DECIMALS = new Map();
for (const [d, codes] of [
  [0, 'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF'],
  [2, 'AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV '
    + 'BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK '
    + 'DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG '
    + 'HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL '
    + 'MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD '
    + 'PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL '
    + 'SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU '
    + 'UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL'],
  [3, 'BHD IQD JOD KWD LYD OMR TND'],
  [4, 'CLF UYW'],
]) for (const c of codes.split(' ')) CURRENCY_DECIMALS.set(c, d);

// §13.5.3, Unicode 15.0.0 Cc Cf Zl Zp Co Cs.
const REPLACED = [
  [0x0000, 0x001f], [0x007f, 0x009f], [0x00ad, 0x00ad], [0x0600, 0x0605], [0x061c, 0x061c], [0x06dd, 0x06dd],
  [0x070f, 0x070f], [0x0890, 0x0891], [0x08e2, 0x08e2], [0x180e, 0x180e], [0x200b, 0x200f], [0x2028, 0x202e],
  [0x2060, 0x2064], [0x2066, 0x206f], [0xd800, 0xf8ff], [0xfeff, 0xfeff], [0xfff9, 0xfffb], [0x110bd, 0x110bd],
  [0x110cd, 0x110cd], [0x13430, 0x1343f], [0x1bca0, 0x1bca3], [0x1d173, 0x1d17a], [0xe0001, 0xe0001],
  [0xe0020, 0xe007f], [0xf0000, 0xffffd], [0x100000, 0x10fffd],
];
const replaced = (cp) => REPLACED.some(([lo, hi]) => cp >= lo && cp <= hi);

// clean is clean(t) of §13.5.
function clean(t) {
  const cps = [];
  for (const ch of t) cps.push(replaced(ch.codePointAt(0)) ? '\ufffd' : ch); // a lone surrogate is one code point here, and replaced
  if (cps.length > MAX_TEXT) return `${cps.slice(0, MAX_TEXT - 1).join('')}\u2026`;
  return cps.join('');
}

const SPACE_SEPARATORS = new Set([0x20, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
  0x2007, 0x2008, 0x2009, 0x200a, 0x202f, 0x205f, 0x3000]);

// show is show(v) of §13.5.
function show(v) {
  const cps = [...v];
  const needs = cps.length === 0
    || SPACE_SEPARATORS.has(cps[0].codePointAt(0)) || SPACE_SEPARATORS.has(cps[cps.length - 1].codePointAt(0))
    || /[,:"\\]/.test(v);
  if (!needs) return v;
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function timestampText(s, n) {
  if (s < TS_MIN || s > TS_MAX || n < 0n || n > 999999999n) return `timestamp(${s}, ${n})`;
  const days = Number(s >= 0n ? s / 86400n : -((-s + 86399n) / 86400n));
  const secs = Number(s - BigInt(days) * 86400n);
  const [y, m, d] = civilFromDays(days);
  const p = (x, w) => String(x).padStart(w, '0');
  const frac = n === 0n ? '' : `.${p(n, 9).replace(/0+$/, '')}`;
  return `${p(y, 4)}-${p(m, 2)}-${p(d, 2)}T${p(Math.floor(secs / 3600), 2)}:${p(Math.floor(secs / 60) % 60, 2)}:${p(secs % 60, 2)}${frac}Z`;
}

function durationText(s, n) {
  const abs = (x) => (x < 0n ? -x : x);
  if (abs(s) > DUR_MAX || abs(n) > 999999999n || (s < 0n && n > 0n) || (s > 0n && n < 0n)) return `duration(${s}, ${n})`;
  const frac = n === 0n ? '' : `.${String(abs(n)).padStart(9, '0').replace(/0+$/, '')}`;
  return `${s < 0n || n < 0n ? '-' : ''}${abs(s)}${frac}s`;
}

function wellKnownText(msg) {
  const s = msg.get(msg.type.byNumber.get(1));
  const n = msg.get(msg.type.byNumber.get(2));
  return msg.type.wellKnown === 'timestamp' ? timestampText(s, n) : durationText(s, n);
}

// scalarText is the text of a value of a non-message kind.
function scalarText(field, v) {
  switch (field.kind) {
    case 'string': return v;
    case 'bool': return v ? 'true' : 'false';
    case 'enum': return field.enum.nameOf.get(v) ?? String(v);
    case 'float': return formatFloat(v, 32);
    case 'double': return formatFloat(v, 64);
    case 'bytes': return Buffer.from(v.buffer, v.byteOffset, v.length).toString('base64');
    default: return String(v); // integers: BigInt's decimal
  }
}

function amountText(v, c) {
  const d = CURRENCY_DECIMALS.get(c);
  if (d === undefined) return `${v} (minor units)${c === '' ? '' : ` ${c}`}`;
  let digits = String(v < 0n ? -v : v).padStart(d + 1, '0');
  if (d > 0) digits = `${digits.slice(0, digits.length - d)}.${digits.slice(digits.length - d)}`;
  return `${v < 0n ? '-' : ''}${digits} ${c}`;
}

function currencyOf(msg, display) {
  const name = display.currency_field ?? display.currencyField ?? '';
  const field = msg.type.fields.find((f) => f.name === name);
  if (!field || field.kind !== 'string' || field.repeated) return '';
  return msg.has(field) ? msg.values.get(field.number) : ''; // unset: the empty string, not a proto2 default
}

function isAmount(display) {
  const f = display.format;
  return f === AMOUNT_MINOR || f === 1 || (f instanceof JSONNumber && f.text === '1') || f === '1';
}

// summarize is the summary of §13.5: a list of {field, label, value}.
// options.display declares display fields by full name (§13.4):
// {'pkg.Message.field': {label, format, currency_field}}; a declaration is
// used for a field that has one, the field's (stepup.v1.display) option
// otherwise.
function summarize(msg, options = {}) {
  const declared = options.display || {};
  const displayOf = (field) => (Object.hasOwn(declared, field.fullName) ? declared[field.fullName] || {} : field.display);
  const items = [];
  const item = (name, field, display, text) => {
    items.push({ field: name, label: clean(display.label || field.name), value: clean(text) });
  };
  const walk = (m, prefix, depth) => {
    if (depth > MAX_WALK_DEPTH) return;
    for (const field of m.type.fields) {
      if (items.length >= MAX_ITEMS) return;
      if (field.explicit && !m.has(field)) continue;
      const name = prefix + field.name;
      const display = displayOf(field);
      const v = m.get(field);
      if (field.map) {
        if (!display) continue;
        const keyField = field.message.byNumber.get(1);
        const valueField = field.message.byNumber.get(2);
        const text = sortedEntries(field, v).map((e) => `${scalarText(keyField, e.key)}: ${
          valueField.kind === 'message' ? '\u2026' : scalarText(valueField, e.value)}`).join(', ');
        item(name, field, display, text);
      } else if (field.repeated && (field.kind === 'message' || field.kind === 'group')) {
        for (let i = 0; i < v.length && items.length < MAX_ITEMS; i++) walk(v[i], `${name}[${i}].`, depth + 1);
      } else if (field.kind === 'message' || field.kind === 'group') {
        const wk = field.message.wellKnown;
        if (display && (wk === 'timestamp' || wk === 'duration')) item(name, field, display, wellKnownText(v));
        else walk(v, `${name}.`, depth + 1);
      } else if (display) {
        const amount = isAmount(display) && INTEGER.has(field.kind);
        const text1 = (x) => (amount ? amountText(x, currencyOf(m, display)) : scalarText(field, x));
        item(name, field, display, field.repeated ? v.map(text1).join(', ') : text1(v));
      }
    }
  };
  walk(msg, '', 0);
  return items.slice(0, MAX_ITEMS);
}

// summaryText is summary_text of §13.5 for the full method and the items.
function summaryText(method, items) {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(method);
  if (!m) throw new Error(`${method} is not /package.Service/Method`);
  const service = m[1].slice(m[1].lastIndexOf('.') + 1);
  let text = `approve ${clean(`${service}.${m[2]}`)}`;
  if (items.length) text += `: ${items.map((it) => `${clean(it.label)} ${show(clean(it.value))}`).join(', ')}`;
  return text;
}

module.exports = {
  REQUEST_UNKNOWN_FIELD,
  REQUEST_INVALID,
  RequestError,
  JSONMappingError,
  JSONNumber,
  parseJSON,
  Registry,
  Message,
  fromJSON,
  parse,
  canonical,
  digest,
  summarize,
  summaryText,
  formatFloat,
  clean,
  show,
  // for the self-checks
  decimalToFloat: (text, bits) => decimalToFloat(parseDecimal(text), bits === 32 ? F32 : F64),
  timestampText,
  durationText,
};
