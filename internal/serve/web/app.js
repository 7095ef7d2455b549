"use strict";
// acdtcm web page: upload a photo, show the result card, browse history. No dependencies.
(function () {
  const T = {
    en: {
      title: "Acne grading with TCM decision support", tabDiagnose: "Diagnose", tabHistory: "History",
      drop: "Drop a face photo here, or click to choose one", camera: "Take a photo with the camera", description: "Description (symptoms, optional)",
      age: "Age", gender: "Gender", unknown: "—", female: "Female", male: "Male", settings: "API key",
      submit: "Diagnose", allGrades: "All grades", refresh: "Refresh", time: "Time", grade: "Grade",
      confidence: "Confidence", referral: "Referral", footer: "Decision support for research and education, not a medical diagnosis.",
      working: "Analysing…", noImage: "Choose a photo first.", lesions: "Lesion findings", western: "Western options",
      tcm: "TCM syndrome differentiation", syndrome: "Syndrome", principle: "Treatment principle", formula: "Reference formula",
      external: "External treatment", lifestyle: "Lifestyle", constitution: "Constitution", referralTitle: "Please see a clinician",
      probs: "Probability per grade", scale: "scale", yes: "yes", no: "no", page: "page", none: "No diagnoses yet.",
      comedone: "comedones", papule: "papules", pustule: "pustules", nodule: "nodules", lesion: "lesions (untyped)", lang: "中文",
    },
    zh: {
      title: "痤疮分级与中西医辅助决策", tabDiagnose: "诊断", tabHistory: "历史记录",
      drop: "将面部照片拖到这里，或点击选择照片", camera: "用相机拍照", description: "症状描述（可选）",
      age: "年龄", gender: "性别", unknown: "—", female: "女", male: "男", settings: "API 密钥",
      submit: "开始分析", allGrades: "全部分级", refresh: "刷新", time: "时间", grade: "分级",
      confidence: "置信度", referral: "转诊", footer: "仅供科研与教学参考的辅助决策，不构成医学诊断。",
      working: "分析中…", noImage: "请先选择照片。", lesions: "皮损发现", western: "西医治疗选项",
      tcm: "中医辨证", syndrome: "证型", principle: "治法", formula: "参考方剂",
      external: "外治法", lifestyle: "生活调护", constitution: "体质", referralTitle: "建议就医",
      probs: "各分级概率", scale: "量表", yes: "是", no: "否", page: "页", none: "暂无记录。",
      comedone: "粉刺", papule: "丘疹", pustule: "脓疱", nodule: "结节", lesion: "皮损(未分型)", lang: "English",
    },
  };
  const GRADES = {
    hayashi: [["mild", "轻度"], ["moderate", "中度"], ["severe", "重度"], ["very severe", "极重度"]],
    clinical4: [["normal", "正常"], ["mild", "轻度"], ["moderate", "中度"], ["severe", "重度"]],
    cn2019: [["grade I", "Ⅰ级"], ["grade II", "Ⅱ级"], ["grade III", "Ⅲ级"], ["grade IV", "Ⅳ级"]],
  };
  let lang = localStorage.getItem("acdtcm.lang") || ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");
  let last = null, file = null, offset = 0;
  const LIMIT = 10;
  const $ = (id) => document.getElementById(id);
  const t = (k) => T[lang][k] || k;
  const pick = (o) => (o ? (lang === "zh" ? o.zh || o.en : o.en || o.zh) : "");
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function headers() {
    const k = $("apikey").value.trim();
    return k ? { Authorization: "Bearer " + k } : {};
  }
  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
    $("lang").textContent = t("lang");
    document.querySelectorAll("#h-severity option[data-grade]").forEach((o, i) => { o.textContent = gradeName("hayashi", i); });
    if (last) render(last);
    if (!$("view-history").hidden) loadHistory();
  }
  function status(msg, isErr) { $("status").textContent = msg; $("status").className = isErr ? "error" : ""; }
  function setFile(f) {
    file = f;
    const img = $("preview");
    if (f) { img.src = URL.createObjectURL(f); img.hidden = false; } else { img.hidden = true; }
  }
  function gradeName(scale, v) { const g = (GRADES[scale] || [])[v]; return g ? (lang === "zh" ? g[1] : g[0]) : String(v); }
  function render(r) {
    const a = $("result");
    a.replaceChildren();
    a.hidden = false;
    if (r.referral && r.referral.length) {
      const b = el("div", { class: "referral", id: "referral" }, t("referralTitle") + ": ");
      b.append(r.referral.map(pick).join(" · "));
      a.append(b);
    }
    a.append(el("div", { class: "muted" }, t("grade") + " (" + r.severity.scale + " " + t("scale") + ")"));
    a.append(el("div", { class: "grade", id: "grade", "data-grade": String(r.severity.value) },
      pick(r.diagnosis) + " · " + r.severity.value + " · " + t("confidence") + " " + (r.confidence * 100).toFixed(0) + "%"));
    a.append(el("h2", null, t("probs")));
    const bars = el("div", { class: "bars" });
    (r.probabilities || []).forEach((p, i) => {
      bars.append(el("div", { class: "bar" + (i === r.severity.value ? " best" : "") },
        el("span", null, i + " " + gradeName(r.severity.scale, i)),
        el("span", { class: "track" }, el("span", { class: "fill", style: "display:block;width:" + (p * 100).toFixed(1) + "%" })),
        el("span", null, (p * 100).toFixed(1) + "%")));
    });
    a.append(bars);
    if (r.lesions && r.lesions.length) {
      a.append(el("h2", null, t("lesions")));
      const ul = el("ul");
      r.lesions.forEach((l) => ul.append(el("li", null, t(l.type) + ": " + l.count.toFixed(1))));
      a.append(ul);
    }
    if (r.recommendations && r.recommendations.length) {
      a.append(el("h2", null, t("western")));
      const ul = el("ul");
      r.recommendations.forEach((x) => ul.append(el("li", null, pick(x))));
      a.append(ul);
    }
    const c = r.tcm_analysis;
    if (c) {
      const box = el("div", { class: "tcm", id: "tcm" }, el("h2", null, t("tcm")));
      const row = (k, v) => { if (v) box.append(el("p", null, el("strong", null, t(k) + ": "), v)); };
      row("syndrome", pick(c.syndrome));
      if (c.constitution) row("constitution", pick(c.constitution));
      row("principle", pick(c.treatment_principle));
      row("formula", pick(c.formula));
      if (c.external_treatment) row("external", c.external_treatment.map(pick).join("；"));
      if (c.lifestyle) row("lifestyle", c.lifestyle.map(pick).join("；"));
      a.append(box);
    }
    // The knowledge base joins the English and Chinese disclaimers with a newline.
    const parts = (r.disclaimer || "").split("\n");
    const disc = lang === "zh" ? (r.disclaimer_zh || parts[1] || parts[0]) : parts[0];
    a.append(el("p", { class: "disclaimer", id: "disclaimer" }, disc || ""));
  }
  async function submit(ev) {
    ev.preventDefault();
    if (!file) { status(t("noImage"), true); return; }
    const fd = new FormData();
    fd.append("image", file);
    if ($("description").value.trim()) fd.append("description", $("description").value.trim());
    if ($("age").value) fd.append("patient_age", $("age").value);
    if ($("gender").value) fd.append("patient_gender", $("gender").value);
    status(t("working"));
    $("submit").disabled = true;
    try {
      const resp = await fetch("/api/v1/diagnose", { method: "POST", body: fd, headers: headers() });
      const body = await resp.json();
      if (!body.success) { status(body.message || body.error, true); return; }
      last = body.data;
      status("");
      render(last);
    } catch (e) {
      status(String(e), true);
    } finally {
      $("submit").disabled = false;
    }
  }
  async function loadHistory() {
    const q = new URLSearchParams({ limit: String(LIMIT), offset: String(offset) });
    if ($("h-severity").value) q.set("severity", $("h-severity").value);
    const tb = $("history").querySelector("tbody");
    try {
      const resp = await fetch("/api/v1/diagnoses?" + q, { headers: headers() });
      const body = await resp.json();
      tb.replaceChildren();
      if (!body.success) { tb.append(el("tr", null, el("td", { colspan: "4" }, body.message))); return; }
      const d = body.data;
      if (!d.items.length) tb.append(el("tr", null, el("td", { colspan: "4" }, t("none"))));
      d.items.forEach((rec) => {
        const r = rec.result;
        const tr = el("tr", null,
          el("td", null, new Date(rec.created_at).toLocaleString(lang === "zh" ? "zh-CN" : "en")),
          el("td", null, pick(r.diagnosis) + " (" + r.severity.value + ")"),
          el("td", null, (r.confidence * 100).toFixed(0) + "%"),
          el("td", null, rec.referred ? t("yes") : t("no")));
        tr.addEventListener("click", () => { last = r; show("diagnose"); render(r); });
        tb.append(tr);
      });
      $("h-page").textContent = t("page") + " " + (Math.floor(offset / LIMIT) + 1) + " / " + Math.max(1, Math.ceil(d.total / LIMIT));
      $("h-prev").disabled = offset === 0;
      $("h-next").disabled = offset + LIMIT >= d.total;
    } catch (e) {
      tb.replaceChildren(el("tr", null, el("td", { colspan: "4" }, String(e))));
    }
  }
  function show(view) {
    $("view-diagnose").hidden = view !== "diagnose";
    $("view-history").hidden = view !== "history";
    $("tab-diagnose").classList.toggle("active", view === "diagnose");
    $("tab-history").classList.toggle("active", view === "history");
    if (view === "history") loadHistory();
  }
  document.addEventListener("DOMContentLoaded", () => {
    const drop = $("drop");
    ["dragenter", "dragover"].forEach((n) => drop.addEventListener(n, (e) => { e.preventDefault(); drop.classList.add("over"); }));
    ["dragleave", "drop"].forEach((n) => drop.addEventListener(n, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
    drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]); });
    $("image").addEventListener("change", (e) => setFile(e.target.files[0] || null));
    $("camera").addEventListener("change", (e) => setFile(e.target.files[0] || null));
    $("form").addEventListener("submit", submit);
    $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("acdtcm.lang", lang); applyLang(); });
    $("tab-diagnose").addEventListener("click", () => show("diagnose"));
    $("tab-history").addEventListener("click", () => show("history"));
    $("h-refresh").addEventListener("click", loadHistory);
    $("h-severity").addEventListener("change", () => { offset = 0; loadHistory(); });
    $("h-prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); loadHistory(); });
    $("h-next").addEventListener("click", () => { offset += LIMIT; loadHistory(); });
    GRADES.hayashi.forEach((g) => $("h-severity").append(el("option", { value: g[0], "data-grade": g[0] }, g[0])));
    $("apikey").value = sessionStorage.getItem("acdtcm.key") || "";
    $("apikey").addEventListener("change", () => sessionStorage.setItem("acdtcm.key", $("apikey").value));
    applyLang();
  });
})();
