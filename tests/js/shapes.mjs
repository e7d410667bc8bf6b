// The request shapes only huggingface.js sends (PROTOCOL-2.md B.4), with @huggingface/hub itself:
// tree listings with an unencoded `refs/pr/1` revision and path, paths-info as a JSON body,
// `revision/HEAD` (modelInfo's default), `/raw/` HEADs (fileExists) and a regular file's
// download (Range probe + slices through the resolve-cache redirect).
// Prints one JSON line. Usage: node shapes.mjs HUB_URL
import { createHash } from "node:crypto";
import { downloadFile, fileExists, listFiles, modelInfo, pathsInfo } from "@huggingface/hub";

const [hubUrl] = process.argv.slice(2);
const repo = "acme/tiny";
const out = {};
out.prFiles = [];
for await (const f of listFiles({ repo, revision: "refs/pr/1", hubUrl })) out.prFiles.push(f.path);
out.subFiles = [];
for await (const f of listFiles({ repo, revision: "refs/pr/1", path: "sub/dir", hubUrl })) out.subFiles.push(f.path);
const info = await pathsInfo({ repo, paths: ["config.json", "model.bin"], revision: "main", expand: true, hubUrl });
out.paths = info.map((p) => [p.path, p.type, p.size, Boolean(p.lastCommit && p.lastCommit.id)]);
out.sha = (await modelInfo({ name: repo, hubUrl, additionalFields: ["sha"] })).sha;
out.exists = await fileExists({ repo, path: "config.json", hubUrl });
out.missing = await fileExists({ repo, path: "nope.json", hubUrl });
const blob = await downloadFile({ repo, path: "config.json", revision: "main", hubUrl });
out.config = Buffer.from(await blob.arrayBuffer()).toString();
out.slice = Buffer.from(await blob.slice(2, 12).arrayBuffer()).toString();
out.sha256 = createHash("sha256").update(out.config).digest("hex");
console.log(JSON.stringify(out));
