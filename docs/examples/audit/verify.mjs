// A verifier of Stepup audit trails, written from docs/AUDITLOG.md alone,
// to show that the format can be checked without the Go code. It checks
// each chain of a directory: entries read strictly, canonical forms,
// sequence numbers, hash links, file headers, predecessors, checkpoint
// signatures (Ed25519, ES256), and that every record is covered by a
// checkpoint. It prints "ok: ..." and exits 0, or prints each problem and
// exits 1. Node 18 or later, no dependencies.
//
//   node verify.mjs audit-keys.jwks DIR
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const [jwksPath, dir] = process.argv.slice(2);
if (!jwksPath || !dir) {
  console.error("usage: node verify.mjs JWKS DIR");
  process.exit(2);
}

// §3: the members, their kinds and JSON types.
const CORE = { v: "int", kind: "str", chain: "str", seq: "int", prev: "str", time: "str" };
const MEMBERS = {
  file: {
    file: "int", replica: "str", prev_chain: "str", prev_chain_seq: "int", prev_chain_hash: "str", prev_chain_end: "str",
  },
  record: {
    decision: "str", reason: "str", code: "str", method: "str", stream: "bool", peer: "str", user_agent: "str",
    trace_id: "str", subject: "str", client_id: "str", token_id: "str", jkt: "str", step_up_required: "bool",
    factor: "str", via: "str", challenge_id: "str", grant_id: "str", issued_challenge_id: "str",
    issued_grant_id: "str", summary_digest: "str", detail: "str", latency_ns: "int",
  },
  checkpoint: { trigger: "str", alg: "str", kid: "str", sig: "str" },
};
const PREFIX = "stepup-auditlog-checkpoint-v1\n";

const problems = [];
const problem = (msg) => problems.push(msg);

// §4: the canonical form. JSON.stringify writes strings and integers as RFC
// 8785 does; the members are sorted and the empty optional ones left out.
function canonical(entry, withSig = true) {
  const names = Object.keys(entry)
    .filter((k) => k in CORE || (entry[k] !== "" && entry[k] !== 0 && entry[k] !== false))
    .filter((k) => withSig || k !== "sig")
    .sort();
  return "{" + names.map((k) => JSON.stringify(k) + ":" + JSON.stringify(entry[k])).join(",") + "}";
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const sha256 = (s) => b64url(createHash("sha256").update(s, "utf8").digest());

// §3: a strict reading. JSON.parse keeps the last of duplicate names, so
// duplicates are looked for in the text first (a name followed by a colon
// at the top level of a flat object).
function parseEntry(line) {
  let e;
  try {
    e = JSON.parse(line);
  } catch {
    return [null, "not JSON"];
  }
  if (typeof e !== "object" || e === null || Array.isArray(e)) return [null, "not an object"];
  const names = [...line.matchAll(/"((?:[^"\\]|\\.)*)"\s*:/g)].map((m) => JSON.parse('"' + m[1] + '"'));
  if (new Set(names).size !== names.length) return [null, "a member name twice"];
  const kinds = MEMBERS[e.kind];
  if (!kinds) return [null, "unknown kind"];
  for (const [k, v] of Object.entries(e)) {
    const type = CORE[k] ?? kinds[k];
    if (!type) return [null, `member ${k} in a ${e.kind} entry`];
    const ok = type === "str" ? typeof v === "string" : type === "bool" ? typeof v === "boolean" :
      Number.isSafeInteger(v) && v >= 0;
    if (!ok) return [null, `${k} has the wrong type`];
  }
  for (const k of Object.keys(CORE)) if (!(k in e)) return [null, `no ${k}`];
  if (e.v !== 1) return [null, "version " + e.v];
  if (Number.isNaN(Date.parse(e.time))) return [null, "time is not RFC 3339"];
  if (e.seq === 0 ? !(e.kind === "file" && e.file === 1 && e.prev === "") : e.prev.length !== 43) return [null, "bad prev"];
  const need = { file: ["file"], record: ["decision", "reason", "code"], checkpoint: ["trigger", "alg", "kid", "sig"] }[e.kind];
  for (const k of need) if (!e[k]) return [null, `no ${k}`];
  return [e, null];
}

// §5: the keys, by kid.
const keys = new Map();
for (const jwk of JSON.parse(readFileSync(jwksPath, "utf8")).keys) {
  keys.set(jwk.kid, { alg: jwk.crv === "Ed25519" ? "Ed25519" : "ES256", key: createPublicKey({ key: jwk, format: "jwk" }) });
}
function checkSignature(e) {
  const k = keys.get(e.kid);
  if (!k) return `signed by unknown key ${e.kid}`;
  if (k.alg !== e.alg) return `alg ${e.alg} does not fit key ${e.kid}`;
  const input = Buffer.from(PREFIX + canonical(e, false), "utf8");
  const sig = Buffer.from(e.sig, "base64url");
  const ok = e.alg === "Ed25519"
    ? verify(null, input, k.key, sig)
    : verify("sha256", input, { key: k.key, dsaEncoding: "ieee-p1363" }, sig);
  return ok ? null : "the signature does not verify";
}

// §2 and §7 step 1-2: read the files, group by chain, order by header.
const chains = new Map();
for (const name of readdirSync(dir).filter((n) => n.endsWith(".jsonl")).sort()) {
  const text = readFileSync(join(dir, name), "utf8");
  if (text.length > 0 && !text.endsWith("\n")) problem(`${name}: torn last line`);
  const lines = text.split("\n").slice(0, -1);
  const entries = [];
  lines.forEach((line, i) => {
    const [e, err] = parseEntry(line);
    if (err) problem(`${name}:${i + 1}: not a valid entry (${err})`);
    else entries.push({ e, hash: sha256(canonical(e)), where: `${name}:${i + 1}`, line: i + 1 });
  });
  if (entries.length === 0) continue;
  const header = entries[0].e.kind === "file" && entries[0].line === 1 ? entries[0].e : null;
  const chain = header ? header.chain : entries[0].e.chain;
  if (!chains.has(chain)) chains.set(chain, []);
  chains.get(chain).push({ index: header ? header.file : 0, name, entries });
}

// §7 steps 3-8, simplified: this verifier reports the first break of each
// kind rather than classifying every problem as the Go verifier does.
let records = 0;
const ends = new Map(); // chain -> its entries by seq
for (const [id, files] of chains) {
  files.sort((a, b) => a.index - b.index);
  const all = files.flatMap((f) => f.entries.map((x) => ({ ...x, file: f.index })));
  for (const x of all) if (x.e.chain !== id) problem(`${x.where}: an entry of chain ${x.e.chain}`);
  const bySeq = new Map(all.filter((x) => x.e.chain === id).map((x) => [x.e.seq, x]));
  ends.set(id, bySeq);
  let covered = 0, pending = 0;
  for (let seq = 0; bySeq.has(seq) || seq <= Math.max(...bySeq.keys()); seq++) {
    const x = bySeq.get(seq);
    if (!x) {
      problem(`${id}: entry seq ${seq} is missing`);
      pending = 0;
      continue;
    }
    const before = bySeq.get(seq - 1);
    if (seq > 0 && before && x.e.prev !== before.hash) {
      problem(`${before.where}: entry seq ${seq - 1} does not match the prev of entry seq ${seq}`);
      pending = 0;
    }
    if (x.e.kind === "file" && x.e.seq > 0 && before && x.e.file !== before.file + 1) problem(`${x.where}: header of file ${x.e.file} after file ${before.file}`);
    if (x.e.kind === "record") pending++, records++;
    if (x.e.kind === "checkpoint") {
      const err = checkSignature(x.e);
      if (err) problem(`${x.where}: checkpoint seq ${seq}: ${err}`);
      else covered += pending, pending = 0;
    }
  }
  const last = bySeq.get(Math.max(...bySeq.keys()));
  if (last.e.kind !== "checkpoint" || last.e.trigger !== "close") problem(`${id}: does not end with its closing checkpoint`);
  if (pending > 0) problem(`${id}: ${pending} records after the last checkpoint`);
}
// §6: predecessors.
for (const [id, bySeq] of ends) {
  const h = bySeq.get(0);
  if (!h || !h.e.prev_chain) continue;
  const p = ends.get(h.e.prev_chain);
  if (!p) problem(`${id}: its predecessor ${h.e.prev_chain} is missing`);
  else if (p.get(h.e.prev_chain_seq)?.hash !== h.e.prev_chain_hash) problem(`${id}: its predecessor's end does not match`);
}

if (problems.length > 0) {
  for (const p of problems) console.log(p);
  process.exit(1);
}
console.log(`ok: ${chains.size} chains, ${records} records, every record under a valid checkpoint`);
