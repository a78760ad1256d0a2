// Generates src/gen from the service's protos (../../proto) and the google.rpc error details
// (proto-vendor/, copied from googleapis) with the TypeScript plugins of the repository's
// buf.gen.yaml (those writing to clients/typescript/src/gen). buf and protoc-gen-es come from
// npm (devDependencies): no protoc download, no remote plugins, no registry of schemas.
//
//   npm run generate     rewrite src/gen
//   npm run check-gen    regenerate elsewhere; exit 1 if the committed src/gen differs
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { parse } from "yaml";

const here = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(here, "node_modules", ".bin", name);
const root = resolve(here, "..", "..");
const OUT = join(here, "src", "gen");
const OUT_IN_TEMPLATE = "clients/typescript/src/gen";
const INPUTS = [join(root, "proto"), join(here, "proto-vendor")];

// buf.gen.yaml reduced to its TypeScript plugins, writing to `out`.
function template(out) {
  const all = parse(readFileSync(join(root, "buf.gen.yaml"), "utf8"));
  const plugins = all.plugins.filter((p) => p.out === OUT_IN_TEMPLATE).map((p) => ({ ...p, out }));
  if (!plugins.length) throw new Error(`no plugin of buf.gen.yaml writes to ${OUT_IN_TEMPLATE}`);
  return JSON.stringify({ ...all, plugins });
}

function generate(out) {
  rmSync(out, { recursive: true, force: true });
  const env = { ...process.env, PATH: [join(here, "node_modules", ".bin"), process.env.PATH].join(delimiter) };
  for (const input of INPUTS) {
    execFileSync(bin("buf"), ["generate", input, "--template", template(out)], { cwd: root, env, stdio: "inherit" });
  }
}

function files(root, dir = root) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(root, path) : [relative(root, path)];
  });
}

if (process.argv.includes("--check")) {
  const fresh = mkdtempSync(join(tmpdir(), "honcho-ts-gen-"));
  try {
    generate(fresh);
    const want = files(fresh).sort();
    let have = [];
    try {
      have = files(OUT).sort();
    } catch {
      // missing: every file differs
    }
    const names = [...new Set([...want, ...have])].sort();
    const stale = names.filter((name) => {
      try {
        return !readFileSync(join(fresh, name)).equals(readFileSync(join(OUT, name)));
      } catch {
        return true;
      }
    });
    if (stale.length) {
      console.error(`src/gen is stale (run \`npm run generate\`): ${stale.join(", ")}`);
      process.exit(1);
    }
    console.log("src/gen is up to date");
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
} else {
  generate(OUT);
}
