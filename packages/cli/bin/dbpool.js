#!/usr/bin/env node
// The installed `dbpool` command. It exists before the first build (npm links bins at install time,
// before `prepare` compiles dist/), so a fresh `npm install` gets a working `npx dbpool`.
require('../dist/bin.js')
