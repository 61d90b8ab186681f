// Runs the audit page's script against a minimal DOM: grades items, presses "Save",
// prints the CSV the page would download. Usage: node run_audit_page.js page.html grades.json rater
"use strict";
const fs = require("fs");
const [page, gradesFile, rater] = process.argv.slice(2);
const html = fs.readFileSync(page, "utf8");
const script = html.match(/<script>([\s\S]*?)<\/script>/)[1];
const grades = JSON.parse(fs.readFileSync(gradesFile, "utf8"));

const listeners = {};
const elements = {};
function element(id) {
  return (elements[id] = elements[id] || {
    id, value: "", textContent: "", innerHTML: "", children: [],
    classList: { toggle() {} },
    appendChild(child) { this.children.push(child); },
    addEventListener(type, fn) { listeners[id + ":" + type] = fn; },
    click() { this.clicked = true; }, remove() {},
  });
}
let blob = null;
const store = {};
const context = {
  document: {
    getElementById: element,
    createElement: (tag) => ({ tag, outerHTML: "<" + tag + ">", classList: { toggle() {} }, click() {}, remove() {} }),
    body: { appendChild() {} },
  },
  localStorage: { getItem: (k) => (k in store ? store[k] : null), setItem: (k, v) => { store[k] = String(v); } },
  Blob: function (parts) { blob = parts.join(""); },
  URL: { createObjectURL: () => "blob:fake" },
  alert: (message) => { throw new Error("alert: " + message); },
};
new Function(...Object.keys(context), script)(...Object.values(context));
for (const [item, grade] of Object.entries(grades)) {
  listeners["queries:change"]({ target: { name: item, value: String(grade) } });
}
element("rater").value = rater;
listeners["save:click"]();
process.stdout.write(blob);
