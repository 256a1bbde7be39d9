#!/usr/bin/env node
// Declarations for ESM consumers (`import` condition of package.json `exports`): a copy of dist/*.d.ts in
// dist/esm, marked "type": "module", with relative specifiers given their `.js` extension. TypeScript
// resolves `kysely` from a declaration file in the mode of that file; from dist/*.d.ts (CommonJS) that
// is kysely's CJS build, whose `Kysely` class (private fields) is not the ESM `Kysely` an ESM app
// imports: without this copy `new Kysely({ dialect: new DbpoolDialect({ pool }) })` fails to compile
// under "module": "node16"/"nodenext" in an ESM package. Run after `tsc -b` (the package's prepack).
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const dist = path.join(__dirname, '..', 'dist')
const out = path.join(dist, 'esm')
fs.rmSync(out, { recursive: true, force: true })
fs.mkdirSync(out, { recursive: true })
fs.writeFileSync(path.join(out, 'package.json'), '{ "type": "module" }\n')
for (const name of fs.readdirSync(dist)) {
  if (!name.endsWith('.d.ts')) continue
  const text = fs
    .readFileSync(path.join(dist, name), 'utf8')
    .replace(/^\/\/# sourceMappingURL=.*$/m, '')
    .replace(/((?:from|import\()\s*)(['"])(\.\.?\/[^'"]+?)(?<!\.js)\2/g, '$1$2$3.js$2')
  // relative imports of this package's own declarations now stay inside dist/esm
  fs.writeFileSync(path.join(out, name), text)
}
