// Prints canonical.js's §13.5.1 text of each value read from stdin, one a
// line: "32 <8 hex digits>" (binary32 bits) or "64 <16 hex digits>"
// (binary64 bits). gateway/canonical_js_test.go compares the output with
// Go's strconv.
'use strict';

const fs = require('node:fs');
const { formatFloat } = require('./canonical.js');

const dv = new DataView(new ArrayBuffer(8));
const out = [];
for (const line of fs.readFileSync(0, 'utf8').split('\n')) {
  if (line === '') continue;
  const [size, bits] = line.split(' ');
  if (size === '32') {
    dv.setUint32(0, Number.parseInt(bits, 16));
    out.push(formatFloat(dv.getFloat32(0), 32));
  } else {
    dv.setBigUint64(0, BigInt(`0x${bits}`));
    out.push(formatFloat(dv.getFloat64(0), 64));
  }
}
process.stdout.write(`${out.join('\n')}\n`);
