// Packaging step of scripts/wasm.sh: gives the module's imports and exports short names.
//
// wasm-bindgen names each import `__wbg_{name}_{16 hex digits of hash}`, and every name is
// written twice, in the .wasm import section and as a key in the JS glue. Those hashes are
// random to gzip (about 1.5 KB of the package). This renames each such import to `__wbg_{n}`
// (n in base 36), and each export the glue calls as `wasm.{name}` (all but `memory`) to `_{n}`,
// and each import module (`./restsip_wasm_bg.js`, the snippets' paths) to `{n}`, in both
// files, consistently; nothing else in either file changes.
//
// usage: node short-imports.mjs pkg/restsip_wasm_bg.wasm pkg/restsip_wasm.js
import { readFileSync, writeFileSync } from "node:fs";

const [wasmPath, jsPath] = process.argv.slice(2);
const wasm = readFileSync(wasmPath);
let js = readFileSync(jsPath, "utf8");

const readLeb = (buf, pos) => {
  let value = 0;
  let shift = 0;
  let byte;
  do {
    byte = buf[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, pos];
};
const leb = (n) => {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
};
const readName = (buf, pos) => {
  const [len, start] = readLeb(buf, pos);
  return [buf.subarray(start, start + len).toString("utf8"), start + len];
};
const name = (text) => {
  const bytes = Buffer.from(text, "utf8");
  return Buffer.concat([leb(bytes.length), bytes]);
};
// The bytes after an import's kind: function type, table, memory, global or tag.
const skipDesc = (buf, pos, kind) => {
  const limits = (p) => {
    const flags = buf[p++];
    [, p] = readLeb(buf, p);
    if (flags & 1) [, p] = readLeb(buf, p);
    return p;
  };
  switch (kind) {
    case 0: return readLeb(buf, pos)[1];
    case 1: return limits(pos + 1);
    case 2: return limits(pos);
    case 3: return pos + 2;
    case 4: return readLeb(buf, pos + 1)[1];
    default: throw new Error(`unknown import kind ${kind}`);
  }
};

const hashed = /^__wbg_.+_[0-9a-f]{16}$/;
const renames = new Map();
const exportRenames = new Map();
const moduleRenames = new Map();
const calledByGlue = (field) => field !== "memory" && js.includes(`wasm.${field}`);
const parts = [wasm.subarray(0, 8)];
let pos = 8;
while (pos < wasm.length) {
  const id = wasm[pos];
  const [size, start] = readLeb(wasm, pos + 1);
  const end = start + size;
  if (id === 7) {
    let [count, p] = readLeb(wasm, start);
    const entries = [leb(count)];
    for (; count > 0; count--) {
      let field;
      [field, p] = readName(wasm, p);
      const descStart = p;
      p = readLeb(wasm, p + 1)[1];
      if (calledByGlue(field)) {
        exportRenames.set(field, `_${exportRenames.size.toString(36)}`);
        field = exportRenames.get(field);
      }
      entries.push(name(field), wasm.subarray(descStart, p));
    }
    const body = Buffer.concat(entries);
    parts.push(Buffer.from([7]), leb(body.length), body);
    pos = end;
    continue;
  }
  if (id !== 2) {
    parts.push(wasm.subarray(pos, end));
    pos = end;
    continue;
  }
  let [count, p] = readLeb(wasm, start);
  const entries = [leb(count)];
  for (; count > 0; count--) {
    let module, field;
    [module, p] = readName(wasm, p);
    [field, p] = readName(wasm, p);
    if (!moduleRenames.has(module)) moduleRenames.set(module, moduleRenames.size.toString(36));
    module = moduleRenames.get(module);
    const descStart = p;
    p = skipDesc(wasm, p + 1, wasm[p]);
    if (hashed.test(field)) {
      if (!renames.has(field)) renames.set(field, `__wbg_${renames.size.toString(36)}`);
      field = renames.get(field);
    }
    entries.push(name(module), name(field), wasm.subarray(descStart, p));
  }
  const body = Buffer.concat(entries);
  parts.push(Buffer.from([2]), leb(body.length), body);
  pos = end;
}

for (const [from, to] of renames) {
  const uses = js.split(from).length - 1;
  if (uses !== 1) throw new Error(`${from} appears ${uses} times in the glue, expected once`);
  js = js.replace(from, to);
}
for (const [from, to] of moduleRenames) {
  // The keys of the imports object: `"./restsip_wasm_bg.js": import0,`.
  const key = new RegExp(`"${from.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}": import`, "g");
  if (!key.test(js)) throw new Error(`no imports key for module ${from} in the glue`);
  js = js.replace(key, `"${to}": import`);
}
for (const [from, to] of exportRenames) {
  js = js.replace(new RegExp(`\\bwasm\\.${from}\\b`, "g"), `wasm.${to}`);
}
writeFileSync(wasmPath, Buffer.concat(parts));
writeFileSync(jsPath, js);
console.error(`short-imports: ${renames.size} imports and ${exportRenames.size} exports renamed`);
