// Runs docs/examples/request-vectors.json against canonical.js:
//
//   node canonical-vectors.js ../../../docs/examples/request-vectors.json
//
// For each vector: message JSON → value → canonical bytes, digest, summary
// and summary_text; canonical_hex read back → the same canonical bytes and
// summary; every other input read → the same canonical bytes. For each
// refusal: the bytes are refused with its reason and request_field. Prints
// one line per failure and `vectors: N passed, M failed`; exits 1 on any
// failure.
'use strict';

const fs = require('node:fs');
const c = require('./canonical.js');

function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node canonical-vectors.js <request-vectors.json>');
    return 2;
  }
  const file = c.parseJSON(fs.readFileSync(argv[0], 'utf8'));
  const registry = new c.Registry(file.descriptors);
  let passed = 0;
  let failed = 0;
  const hex = (b) => Buffer.from(b).toString('hex');
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  for (const v of file.vectors || []) {
    const problems = [];
    const check = (what, got, want) => {
      if (!same(got, want)) problems.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    };
    const attempt = (what, fn) => {
      try {
        fn();
      } catch (err) {
        problems.push(`${what}: ${err instanceof c.RequestError ? `refused ${err.reason} ${err.field}` : err.stack}`);
      }
    };
    const display = v.display ? { display: v.display } : {};
    attempt('method', () => check('method input type', registry.inputType(v.method).fullName, v.type));
    const results = (what, msg) => {
      const bytes = c.canonical(msg);
      check(`${what} canonical_hex`, hex(bytes), v.canonical_hex);
      check(`${what} digest`, c.digest(v.method, bytes), v.digest);
      const items = c.summarize(msg, display);
      check(`${what} summary`, items, v.summary);
      check(`${what} summary_text`, c.summaryText(v.method, items), v.summary_text);
    };
    if (v.message !== null && v.message !== undefined) {
      attempt('message', () => results('message', c.fromJSON(registry, v.type, v.message)));
    }
    attempt('canonical_hex read back', () => results('canonical_hex read back', c.parse(registry, v.type, Buffer.from(v.canonical_hex, 'hex'))));
    (v.inputs || []).forEach((input, i) => {
      attempt(`input ${i} (${input.note})`, () => {
        const msg = c.parse(registry, v.type, Buffer.from(input.wire_hex, 'hex'));
        check(`input ${i} (${input.note}) canonical_hex`, hex(c.canonical(msg)), v.canonical_hex);
      });
    });
    if (problems.length) {
      failed++;
      for (const p of problems) console.log(`FAIL vector ${v.name}: ${p}`);
    } else {
      passed++;
    }
  }

  for (const r of file.refusals || []) {
    let problem = null;
    try {
      const msg = c.parse(registry, r.type, Buffer.from(r.wire_hex, 'hex'));
      c.canonical(msg);
      problem = 'read without refusal';
    } catch (err) {
      if (!(err instanceof c.RequestError)) problem = err.stack;
      else if (err.reason !== r.reason || err.field !== r.request_field) {
        problem = `refused ${err.reason} ${JSON.stringify(err.field)}, want ${r.reason} ${JSON.stringify(r.request_field)}`;
      }
    }
    if (problem) {
      failed++;
      console.log(`FAIL refusal ${r.name}: ${problem}`);
    } else {
      passed++;
    }
  }

  console.log(`vectors: ${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
