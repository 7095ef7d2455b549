// Dumps the MobileNetV2 weights that the npm package nsfwjs@4.4.0 (MIT, Infinite Red) ships
// inside itself (TF.js layers model, uint8-quantized weights as a base64 JS module) to
// OUT/manifest.json + OUT/weights.bin (float32) + OUT/topology.json, for probe.py.
//   cd "$(mktemp -d)" && npm pack nsfwjs@4.4.0 && tar xzf nsfwjs-4.4.0.tgz
//   node dump_weights.js package/dist/models/mobilenet_v2 OUT
const fs = require("fs");
const path = require("path");
const [dir, out] = process.argv.slice(2);
const m = require(path.resolve(dir, "model.min.js"));
const w = require(path.resolve(dir, "group1-shard1of1.min.js"));
const buf = Buffer.from(w, "base64");
let off = 0;
const manifest = [];
const chunks = [];
for (const g of m.weightsManifest) {
  for (const e of g.weights) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const q = e.quantization;
    const f = new Float32Array(n);
    if (q && q.dtype === "uint8") {
      for (let i = 0; i < n; i++) f[i] = buf[off + i] * q.scale + q.min;
      off += n;
    } else if (!q) {
      f.set(new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * n)));
      off += 4 * n;
    } else {
      throw new Error(`${e.name}: unsupported quantization ${q.dtype}`);
    }
    manifest.push({ name: e.name, shape: e.shape });
    chunks.push(Buffer.from(f.buffer));
  }
}
if (off !== buf.length) throw new Error(`used ${off} of ${buf.length} weight bytes`);
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, "weights.bin"), Buffer.concat(chunks));
fs.writeFileSync(path.join(out, "manifest.json"), JSON.stringify(manifest));
fs.writeFileSync(path.join(out, "topology.json"), JSON.stringify((m.modelTopology.model_config || m.modelTopology).config.layers));
console.log(`${manifest.length} tensors, ${off} bytes -> ${out}`);
